"""GitHub repositories: one repository (a folder, ``.tar.gz``/``.tgz``/``.zip``) is one input; each file a document.

The reader reads the whole tree in memory first (through :mod:`pipelines.readers.archive`, so tar-slip members, links
out of the tree and bombs are refused), detects the repository's license from it, then yields the files that pass
RedPajama's file-selection rules.  Files that are not code documents (wrong extension, binaries, vendored or
minified files) are skipped and counted by reason; code files over the size cap or whose bytes are damaged in the
archive (``read_error:...``) become rejected rows, so one bad member never costs the rest of the repository.
A file name that is not valid UTF-8 is kept in its ``printable_path`` form (``caf\\xe9.py``) in the id, with
``meta.path_escaped``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from filters.licenses import detect_license, is_license_candidate
from pipelines.core import storage
from pipelines.core.recipe import Reader, Skip, discover_files
from pipelines.readers.archive import Limits, Member, Refused, is_archive, iter_tree, printable_path

#: extension (or whole file name) → language; RedPajama v1's allowlist
LANGUAGES: dict[str, str] = {
    ".asm": "assembly",
    ".bat": "batchfile",
    ".cmd": "batchfile",
    ".c": "c",
    ".h": "c",
    ".cs": "c#",
    ".cpp": "c++",
    ".hpp": "c++",
    ".c++": "c++",
    ".h++": "c++",
    ".cc": "c++",
    ".hh": "c++",
    ".cmake": "cmake",
    ".css": "css",
    ".dockerfile": "dockerfile",
    "dockerfile": "dockerfile",
    ".f90": "fortran",
    ".f": "fortran",
    ".f03": "fortran",
    ".f08": "fortran",
    ".f77": "fortran",
    ".f95": "fortran",
    ".for": "fortran",
    ".go": "go",
    ".hs": "haskell",
    ".html": "html",
    ".java": "java",
    ".js": "javascript",
    ".jl": "julia",
    ".lua": "lua",
    ".md": "markdown",
    ".markdown": "markdown",
    ".php": "php",
    ".pl": "perl",
    ".pm": "perl",
    ".ps1": "powershell",
    ".py": "python",
    ".rb": "ruby",
    ".rs": "rust",
    ".sql": "sql",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".tex": "tex",
    ".vb": "visual basic",
    "makefile": "makefile",
    ".xml": "xml",
    ".rst": "restructuredtext",
    ".m": "matlab",
    ".smali": "smali",
}
VENDORED_DIRS = (
    "node_modules",
    "vendor",
    "third_party",
    "thirdparty",
    "bower_components",
    ".git",
    "__pycache__",
    "site-packages",
    "dist",
    ".venv",
    "venv",
)
MINIFIED_SUFFIXES = (".min.js", ".min.css", "-min.js", ".bundle.js")


def language_of(path: str, languages: dict[str, str] | None = None) -> str | None:
    languages = languages or LANGUAGES
    base = posixpath.basename(path).lower()
    if base in languages:
        return languages[base]
    return languages.get(posixpath.splitext(base)[1])


def repo_name(path: str) -> str:
    """``owner--repo`` folders keep their name; archives lose their suffix (printable even from non-UTF-8 bytes)."""
    base = printable_path(os.path.basename(os.path.normpath(path)))[0]
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def _strip_common_root(paths: list[str]) -> str:
    """GitHub's archives wrap everything in ``<repo>-<ref>/``: the prefix to drop, or ''."""
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1 and all("/" in p for p in paths):
        return tops.pop() + "/"
    return ""


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass
class GithubReader(Reader):
    """Documents are the code files of a repository, with ``license`` and ``language`` columns."""

    patterns: ClassVar[tuple[str, ...]] = ("*.tar.gz", "*.tgz", "*.zip")
    batch_size: int = 256
    #: extension allowlist (``LANGUAGES`` keys); ``null`` uses RedPajama's
    extensions: list[str] | None = None
    skip_dirs: list[str] = field(default_factory=lambda: list(VENDORED_DIRS))
    #: files larger than this become rejected rows (``read:file_too_large``)
    max_file_bytes: int = 1_000_000
    max_total_bytes: int = 300_000_000
    max_members: int = 100_000
    #: files under more folders than this are not read (``archive:too_deep``)
    max_depth: int = 64

    def adds(self) -> dict[str, pa.DataType]:
        return {"license": pa.string(), "language": pa.string()}

    def discover(self, spec: str) -> list[str]:
        """An archive, one repository folder, or a folder of repositories (each sub-folder or archive an input).

        On object storage (``s3://``, ``gs://``) each repository is one archive object (``.tar.gz``/``.zip``)."""
        if storage.is_uri(spec):
            found = discover_files(spec, self.patterns)
            if not found:
                raise FileNotFoundError(
                    f"INPUT {spec!r}: on object storage, GitHub inputs are repository archives "
                    "(.tar.gz, .tgz, .zip); repository folders are read from local paths only"
                )
            return found
        if os.path.isfile(spec):
            return [os.path.abspath(spec)]
        if not os.path.isdir(spec):
            raise FileNotFoundError(
                f"INPUT {spec!r}: give a repository folder, a folder of them, or an archive"
            )
        entries = sorted(os.listdir(spec))
        if ".git" in entries or not any(
            os.path.isdir(os.path.join(spec, e)) or is_archive(e) for e in entries
        ):
            return [os.path.abspath(spec)]
        found = [os.path.join(spec, e) for e in entries if not e.startswith(".")]
        return [
            os.path.abspath(p) for p in found if os.path.isdir(p) or (os.path.isfile(p) and is_archive(p))
        ]

    def _languages(self) -> dict[str, str]:
        if self.extensions is None:
            return LANGUAGES
        return {e.lower(): LANGUAGES.get(e.lower(), e.lstrip(".").lower()) for e in self.extensions}

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        limits = Limits(self.max_file_bytes, self.max_total_bytes, self.max_members, self.max_depth)
        members: list[Member] = []
        damaged: list[Refused] = []  # members whose bytes could not be read: rows if they are code files
        for item in iter_tree(path, limits):
            if isinstance(item, Refused):
                if item.path and item.reason.startswith("read_error:"):
                    damaged.append(item)
                else:
                    yield Skip(item.reason)
            else:
                members.append(item)
        paths = [m.path for m in members] + [d.path for d in damaged]
        prefix = _strip_common_root(paths) if not os.path.isdir(path) else ""
        repo = repo_name(path)
        license_texts = {
            m.path[len(prefix) :]: m.data.decode("utf-8", "replace")
            for m in members
            if m.data is not None and is_license_candidate(m.path)
        }
        # SPDX lines may sit in any file's first lines: give the detector the heads of the code files too
        for m in members:
            if (
                m.data is not None
                and m.path[len(prefix) :] not in license_texts
                and b"SPDX-License" in m.data[:4096]
            ):
                license_texts[m.path[len(prefix) :]] = m.data[:4096].decode("utf-8", "replace")
        finding = detect_license(license_texts)
        languages = self._languages()
        skip_dirs = set(self.skip_dirs)
        for m in members:
            rel = m.path[len(prefix) :]
            yield self._file(repo, rel, m, finding.license, finding.evidence, languages, skip_dirs)
        for d in damaged:
            rel = d.path[len(prefix) :]
            member = Member(d.path, None, 0)
            row = self._file(
                repo, rel, member, finding.license, finding.evidence, languages, skip_dirs, d.reason
            )
            yield Skip(d.reason) if isinstance(row, Skip) else row  # not a code file: counted as damaged

    def _file(
        self,
        repo: str,
        rel: str,
        m: Member,
        license_id: str,
        evidence: str,
        languages: dict[str, str],
        skip_dirs: set[str],
        error: str | None = None,
    ) -> dict[str, Any] | Skip:
        """A document row, a rejected row (too large, not UTF-8, damaged: ``error``) or a skip."""
        parts = rel.split("/")
        if any(p in skip_dirs for p in parts[:-1]):
            return Skip("skip:vendored")
        if rel.lower().endswith(MINIFIED_SUFFIXES):
            return Skip("skip:minified")
        language = language_of(rel, languages)
        if language is None:
            return Skip("skip:extension")
        meta = {
            "repo": repo,
            "path": rel,
            "language": language,
            "license": license_id,
            "license_file": evidence,
        }
        if m.escaped:
            meta["path_escaped"] = True
        row: dict[str, Any] = {
            "id": f"{repo}/{rel}",
            "url": None,
            "license": license_id,
            "language": language,
            "meta": meta,
        }
        if error is not None:
            row.update(text="", reason=error)
            return row
        if m.data is None:
            row.update(text="", reason="read:file_too_large")
            meta["bytes"] = m.size
            return row
        if (
            b"\x00" in m.data
        ):  # anywhere: a NUL after the first 8 KiB is as binary as one before (and as cheap)
            return Skip("skip:binary")
        text = _decode(m.data)
        if text is None:
            row.update(text=m.data.decode("utf-8", "replace"), reason="read:not_utf8")
            return row
        row["text"] = text
        return row
