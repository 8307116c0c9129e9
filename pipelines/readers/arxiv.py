"""arXiv LaTeX sources: one paper (a folder, a ``.tar.gz``/``.tgz``/``.zip``, a gzipped ``.tex``, a lone ``.tex``)
is one input and one document.

The paper's files are read in memory (archives never touch the disk; tar-slip members and bombs are refused by
:mod:`pipelines.readers.archive`).  The main file is the one with ``\\documentclass`` and ``\\begin{document}``
(several: the largest); ``\\input``/``\\include`` are resolved relative to it, inside the paper only, after comments
are stripped so a commented-out ``\\input`` is not pulled in.
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
from pipelines.readers.archive import Limits, Refused, is_archive, iter_tree, safe_relpath

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


def pick_main(files: dict[str, str]) -> str | None:
    """The main file: ``\\documentclass`` + ``\\begin{document}`` (largest wins), else ``\\documentclass`` alone."""
    for rule in (lambda t: _DOCCLASS.search(t) and _BEGIN_DOC.search(t), lambda t: _DOCCLASS.search(t)):
        cands = [p for p, t in files.items() if p.endswith(".tex") and rule(strip_comments(t))]
        if cands:
            return max(cands, key=lambda p: (len(files[p]), p))
    return None


def resolve_inputs(main: str, files: dict[str, str], max_depth: int = 20) -> tuple[str, list[str], list[str]]:
    """The main file with its ``\\input``/``\\include`` inlined: (text, resolved paths, missing or refused names)."""
    resolved: list[str] = []
    missing: list[str] = []
    base = posixpath.dirname(main)

    def expand(path: str, depth: int, stack: tuple[str, ...]) -> str:
        text = strip_comments(files[path])

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

    def discover(self, spec: str) -> list[str]:
        """A paper (file or folder), or a folder of papers: its archives, ``.tex`` files and sub-folders.

        A folder is itself one paper when it holds exactly one top-level ``\\documentclass`` file and nothing else
        that looks like a paper (a sub-folder with its own ``\\documentclass`` file, an archive).
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
        for e in entries:
            p = os.path.join(spec, e)
            if os.path.isdir(p):
                if _has_tex(p, need_class=True):
                    papers.append(p)
            elif e.lower().endswith(".tex"):
                if _has_documentclass(p):
                    main_tex.append(p)
            elif is_archive(e) or e.lower().endswith(".gz"):
                papers.append(p)
        if len(main_tex) == 1 and not papers:
            return [os.path.abspath(spec)]
        return sorted(os.path.abspath(p) for p in papers + main_tex)

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        limits = Limits(self.max_file_bytes, self.max_total_bytes, self.max_members)
        name = paper_name(path)
        files: dict[str, str] = {}
        too_large: list[str] = []
        if path.lower().endswith(".tex") and os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read(self.max_file_bytes + 1)
            if len(data) > self.max_file_bytes:
                too_large.append(os.path.basename(path))
            else:
                files[os.path.basename(path)] = _decode(data)
        else:
            for item in iter_tree(path, limits):
                if isinstance(item, Refused):
                    yield Skip(item.reason)
                elif item.data is None:
                    too_large.append(item.path)
                elif item.path.lower().endswith((".tex", ".ltx")) or "." not in posixpath.basename(item.path):
                    files[item.path if "." in posixpath.basename(item.path) else item.path + ".tex"] = (
                        _decode(item.data)
                    )
        row: dict[str, Any] = {"id": f"arxiv:{name}", "url": None}
        meta: dict[str, Any] = {"paper": name}
        if too_large:
            meta["too_large"] = too_large
        main = pick_main(files)
        if main is None:
            reason = (
                "read:file_too_large" if too_large else ("arxiv:no_main_file" if files else "arxiv:no_tex")
            )
            row.update(text="", meta=meta, reason=reason)
            yield row
            return
        text, resolved, missing = resolve_inputs(main, files)
        meta.update(main_file=main, inputs=resolved, inputs_missing=missing)
        row.update(text=text, meta=meta)
        yield row
