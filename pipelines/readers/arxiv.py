"""arXiv LaTeX sources: one paper (a folder, a ``.tar.gz``/``.tgz``/``.zip``, a gzipped ``.tex``, a lone ``.tex``)
is one input and one document.

The paper's files are read in memory (archives never touch the disk; tar-slip members and bombs are refused by
:mod:`pipelines.readers.archive`).  A main file has ``\\documentclass`` and ``\\begin{document}``; ``\\input``/
``\\include`` are resolved relative to it, inside the paper only, after comments are stripped so a commented-out
``\\input`` is not pulled in.  An input holding several main files (two papers in one folder) gives one document per
main file that no other main file pulls in: the largest keeps the id ``arxiv:<name>``, the others get
``arxiv:<name>/<main file>``.  Inlining is bounded in depth, in count (``max_inlines``) and in total size
(``max_inlined_bytes``): a small tarball whose files each ``\\input`` the next ones four times would otherwise grow
exponentially; such a paper is rejected ``arxiv:inline_limit``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from filters.latex import strip_comments
from pipelines.core import storage
from pipelines.core.recipe import Reader, Skip, discover_files
from pipelines.readers.archive import Limits, Refused, is_archive, iter_tree, printable_path, safe_relpath

_INPUT = re.compile(r"\\(input|include|subfile)\s*\{([^}]+)\}|\\input\s+([^\s{}\\]+)")
_DOCCLASS = re.compile(r"\\documentclass")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
PAPER_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".gz", ".tex")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _has_documentclass(path: str) -> bool:
    with open(path, "rb") as f:
        return b"\\documentclass" in f.read(200_000)


def _has_tex(folder: str, need_class: bool) -> bool:
    for dirpath, _, names in os.walk(folder):
        for n in names:
            if n.lower().endswith(".tex") and (
                not need_class or _has_documentclass(os.path.join(dirpath, n))
            ):
                return True
    return False


def paper_name(path: str) -> str:
    base = os.path.basename(os.path.normpath(path))
    for suffix in PAPER_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def main_candidates(files: dict[str, str]) -> list[str]:
    """Main files, largest first: those with ``\\documentclass`` and ``\\begin{document}``; when there is none,
    the largest file with ``\\documentclass`` alone."""
    stripped = {p: strip_comments(t) for p, t in files.items() if p.endswith(".tex")}
    full = [p for p, t in stripped.items() if _DOCCLASS.search(t) and _BEGIN_DOC.search(t)]
    bare = [p for p, t in stripped.items() if _DOCCLASS.search(t)]
    return (
        sorted(full, key=lambda p: (-len(files[p]), p)) or sorted(bare, key=lambda p: (-len(files[p]), p))[:1]
    )


class InlineLimitError(ValueError):
    """Resolving ``\\input``/``\\include`` went past ``max_inlines`` files or ``max_inlined_bytes``."""


def resolve_inputs(
    main: str,
    files: dict[str, str],
    max_depth: int = 20,
    max_inlines: int = 500,
    max_inlined_bytes: int = 1_000_000,
) -> tuple[str, list[str], list[str]]:
    """The main file with its ``\\input``/``\\include`` inlined: (text, resolved paths, missing or refused names).

    Raises :class:`InlineLimitError` once more than ``max_inlines`` files were inlined or the characters inlined
    (the main file included) pass ``max_inlined_bytes``: checked before each file is expanded, so a fan-out bomb
    stops after that much work, not after it has built its text."""
    resolved: list[str] = []
    missing: list[str] = []
    base = posixpath.dirname(main)
    total = 0

    def expand(path: str, depth: int, stack: tuple[str, ...]) -> str:
        nonlocal total
        text = strip_comments(files[path])
        total += len(text)
        if total > max_inlined_bytes:
            raise InlineLimitError(f"more than {max_inlined_bytes} characters inlined from {main}")

        def repl(m: re.Match) -> str:
            name = (m.group(2) or m.group(3)).strip()
            rel = safe_relpath(posixpath.join(base, name))
            target = None
            if rel is not None:
                for cand in (rel, rel + ".tex"):
                    if cand in files:
                        target = cand
                        break
            if target is None or target in stack or depth >= max_depth:
                missing.append(name)
                return ""
            resolved.append(target)
            if len(resolved) > max_inlines:
                raise InlineLimitError(f"more than {max_inlines} files inlined into {main}")
            return expand(target, depth + 1, (*stack, target))

        return _INPUT.sub(repl, text)

    return expand(main, 0, (main,)), resolved, missing


@dataclass
class ArxivReader(Reader):
    """One document per paper: the resolved main file (cleaned later by ``filters.latex.CleanLatex``)."""

    patterns: ClassVar[tuple[str, ...]] = ("*.tar.gz", "*.tgz", "*.tar", "*.zip", "*.gz", "*.tex")
    batch_size: int = 32
    max_file_bytes: int = 20_000_000
    max_total_bytes: int = 200_000_000
    max_members: int = 5_000
    #: files under more folders than this are not read (``archive:too_deep``)
    max_depth: int = 64
    #: files inlined through ``\\input``/``\\include`` per paper (real papers: a few to a few dozen)
    max_inlines: int = 500
    #: characters of LaTeX a paper may grow to by inlining (~7-14x the 70-150 kB of a normal resolved paper)
    max_inlined_bytes: int = 1_000_000

    def discover(self, spec: str) -> list[str]:
        """A paper (file or folder), or a folder of papers: its archives, ``.tex`` files and sub-folders.

        A folder is itself one input when it holds exactly one top-level ``\\documentclass`` file and nothing else
        that looks like a paper (a sub-folder with its own ``\\documentclass`` file, an archive), or when next to
        its ``\\documentclass`` files it holds ``.tex`` files without one (parts that some main file inlines).
        On object storage (``s3://``, ``gs://``) a paper is one object: an archive or a gzipped/lone ``.tex``
        (folders of loose files cannot be told apart without reading them).
        """
        if storage.is_uri(spec):
            return discover_files(spec, self.patterns)
        if os.path.isfile(spec):
            return [os.path.abspath(spec)]
        if not os.path.isdir(spec):
            raise FileNotFoundError(
                f"INPUT {spec!r}: give a paper (.tex, archive, folder) or a folder of papers"
            )
        entries = sorted(e for e in os.listdir(spec) if not e.startswith("."))
        papers = []
        main_tex = []
        # a top-level .tex without \documentclass: a part some main file inlines, so this folder is one paper
        parts = False
        for e in entries:
            p = os.path.join(spec, e)
            if os.path.isdir(p):
                if _has_tex(p, need_class=True):
                    papers.append(p)
            elif e.lower().endswith(".tex"):
                if _has_documentclass(p):
                    main_tex.append(p)
                else:
                    parts = True
            elif is_archive(e) or e.lower().endswith(".gz"):
                papers.append(p)
        if main_tex and (parts or (len(main_tex) == 1 and not papers)):
            return [os.path.abspath(spec)]  # read() gives one document per main file
        return sorted(os.path.abspath(p) for p in papers + main_tex)

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        limits = Limits(self.max_file_bytes, self.max_total_bytes, self.max_members, self.max_depth)
        name = printable_path(paper_name(path))[0]
        files: dict[str, str] = {}
        too_large: list[str] = []
        damaged: list[str] = []  # read errors inside the archive (a cut tarball, a corrupt member)
        if path.lower().endswith(".tex") and os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read(self.max_file_bytes + 1)
            if len(data) > self.max_file_bytes:
                too_large.append(printable_path(os.path.basename(path))[0])
            else:
                files[printable_path(os.path.basename(path))[0]] = _decode(data)
        else:
            for item in iter_tree(path, limits):
                if isinstance(item, Refused):
                    yield Skip(item.reason)
                    if item.reason.startswith("read_error:"):
                        damaged.append(item.reason)
                elif item.data is None:
                    too_large.append(item.path)
                elif item.path.lower().endswith((".tex", ".ltx")) or "." not in posixpath.basename(item.path):
                    files[item.path if "." in posixpath.basename(item.path) else item.path + ".tex"] = (
                        _decode(item.data)
                    )
        meta: dict[str, Any] = {"paper": name}
        if too_large:
            meta["too_large"] = too_large
        mains = main_candidates(files)
        if not mains:
            if too_large:
                reason = "read:file_too_large"
            elif damaged:  # the main file was probably in the part that could not be read
                reason = damaged[-1]
            else:
                reason = "arxiv:no_main_file" if files else "arxiv:no_tex"
            yield {"id": f"arxiv:{name}", "url": None, "text": "", "meta": meta, "reason": reason}
            return
        inlined: set[str] = set()  # files some main file pulled in: a standalone figure is not a second paper
        for i, main in enumerate(mains):
            if main in inlined:
                yield Skip("arxiv:main_file_inlined")
                continue
            yield self._paper(
                f"arxiv:{name}" if i == 0 else f"arxiv:{name}/{main}", main, files, meta, inlined
            )

    def _paper(
        self, doc_id: str, main: str, files: dict[str, str], meta: dict[str, Any], inlined: set[str]
    ) -> dict[str, Any]:
        """One main file's document, or its rejection when inlining goes past the limits."""
        meta = {**meta, "main_file": main}
        try:
            text, resolved, missing = resolve_inputs(
                main, files, max_inlines=self.max_inlines, max_inlined_bytes=self.max_inlined_bytes
            )
        except InlineLimitError as exc:
            meta["inline_limit"] = str(exc)
            return {"id": doc_id, "url": None, "text": "", "meta": meta, "reason": "arxiv:inline_limit"}
        inlined.update(resolved)
        meta.update(inputs=resolved, inputs_missing=missing)
        return {"id": doc_id, "url": None, "text": text, "meta": meta}
