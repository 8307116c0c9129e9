"""Training text for the code and math classifiers, read with the project's own source readers.

Positives come from curated sources: code from GitHub repositories (:class:`GithubReader`, RedPajama's file
selection) and StackExchange posts that carry code blocks; math from arXiv papers (:class:`ArxivReader` then the
arXiv recipe's :class:`CleanLatex`: formulas kept, preamble and bibliography out) and the chunks of StackExchange posts
with at least :data:`MIN_MATH_SPANS` TeX formulas.  Negatives ("prose") are whatever :func:`classifiers.dataset.read_pieces`
reads as text: web pages (WARC, HTML), Wikipedia, books, StackExchange answers (code blocks stripped).

Every document becomes :class:`Piece` s (about 2,000 characters each) with a ``key`` naming the document, so
:func:`classifiers.dataset.split` holds out whole documents.  A user's own labels are fastText lines
(``__label__code <text>``), one label per line.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator
from itertools import takewhile

import pyarrow as pa

from classifiers.dataset import Piece, chunk_text, read_pieces

log = logging.getLogger(__name__)

LABELS = ("prose", "code", "math")
PROSE, CODE, MATH = 0, 1, 2
#: a StackExchange post is a math positive with at least this many TeX formulas ($...$, \(...\), $$...$$)
MIN_MATH_SPANS = 2
_MATH_SPAN = re.compile(r"\$\$[^$]+\$\$|\$[^$\n]+\$|\\\([^)]*\\\)|\\\[.*?\\\]", re.S)
#: a code block in a StackExchange post or a README: a fence, or 3+ consecutive lines indented 4 spaces
_CODE_BLOCK = re.compile(r"```|(?:^(?: {4}|\t)\S.*\n){3,}", re.M)
#: GitHub files whose "language" is mostly prose: kept as code only when they hold a code block
_PROSE_LANGUAGES = {"markdown", "text", "restructuredtext", "tex"}


def math_spans(text: str) -> int:
    return len(_MATH_SPAN.findall(text))


def has_code_block(text: str) -> bool:
    return bool(_CODE_BLOCK.search(text))


def _posts_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "**", "Posts.xml"), recursive=True))


def _has(folder: str, pattern: str) -> bool:
    return bool(glob.glob(os.path.join(folder, "**", pattern), recursive=True))


def stackexchange_docs(folder: str) -> Iterator[tuple[str, str]]:
    """(key, text) of every question with its answers, via the StackExchange recipe's reader."""
    from pipelines.readers.stackexchange import StackExchangeReader

    reader = StackExchangeReader()
    for path in reader.discover(folder):
        for row in reader.read(path):
            if isinstance(row, dict) and not row.get("reason") and row.get("text"):
                yield str(row["id"]), row["text"]


def github_docs(folder: str) -> Iterator[tuple[str, str]]:
    """(repo/path, text) of the code files of each repository (README-like files only with a code block)."""
    from pipelines.readers.github import GithubReader

    reader = GithubReader()
    for path in reader.discover(folder):
        for row in reader.read(path):
            if not isinstance(row, dict) or row.get("reason") or not row.get("text"):
                continue
            if row.get("language") in _PROSE_LANGUAGES and not has_code_block(row["text"]):
                continue
            yield str(row["id"]), row["text"]


def arxiv_docs(folder: str) -> Iterator[tuple[str, str]]:
    """(paper, text) after the arXiv recipe's LaTeX cleanup (formulas kept, as the pipeline keeps them)."""
    from filters.latex import CleanLatex
    from pipelines.readers.arxiv import ArxivReader

    reader, clean = ArxivReader(), CleanLatex()
    for path in reader.discover(folder):
        rows = [r for r in reader.read(path) if isinstance(r, dict) and not r.get("reason") and r.get("text")]
        if not rows:
            continue
        result = clean(pa.table({"text": pa.array([r["text"] for r in rows], pa.large_string())}))
        cleaned = result.table.column("text").to_pylist()
        for row, text, why in zip(rows, cleaned, result.reasons or [None] * len(rows), strict=True):
            if why is None and text:
                yield str(row["id"]), text


def _pieces(docs: Iterator[tuple[str, str]], kind: str, label: int) -> list[Piece]:
    return [Piece(chunk, key, kind, label) for key, text in docs for chunk in chunk_text(text)]


def code_pieces(folder: str) -> list[Piece]:
    """Code positives under ``folder``: StackExchange posts with code blocks if it holds dumps, else repositories."""
    if _posts_files(folder):
        docs = ((k, t) for k, t in stackexchange_docs(folder) if has_code_block(t))
        return _pieces(docs, "stackexchange", CODE)
    return _pieces(github_docs(folder), "github", CODE)


def math_pieces(folder: str) -> list[Piece]:
    """Math positives under ``folder``: arXiv papers (.tex) and StackExchange posts with TeX formulas."""
    out: list[Piece] = []
    if _has(folder, "*.tex"):
        out += _pieces(arxiv_docs(folder), "arxiv", MATH)
    if _posts_files(folder):
        docs = ((k, t) for k, t in stackexchange_docs(folder) if math_spans(t) >= MIN_MATH_SPANS)
        # a chunk without formulas (the discussion around them) is not a math example
        out += [p for p in _pieces(docs, "stackexchange", MATH) if math_spans(p.text) >= MIN_MATH_SPANS]
    if not out:
        raise FileNotFoundError(
            f"{folder}: no arXiv .tex sources or StackExchange Posts.xml to read math from"
        )
    return out


def label_file_pieces(path: str) -> list[Piece]:
    """fastText lines ``__label__code|math|prose <text>`` (one label per line) as pieces keyed ``file#line``."""
    out: list[Piece] = []
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            words = line.split()
            labels = [w[len("__label__") :] for w in takewhile(lambda w: w.startswith("__label__"), words)]
            if len(labels) != 1:
                raise ValueError(f"{path}:{n}: a line is `__label__<code|math|prose> <text>` (one label)")
            if labels[0] not in LABELS:
                raise ValueError(f"{path}:{n}: unknown label {labels[0]!r}; use one of {', '.join(LABELS)}")
            text = line.split(None, 1)[1] if len(words) > 1 else ""
            out.append(Piece(text.strip(), f"{name}#{n}", "labels", LABELS.index(labels[0])))
    if not out:
        raise ValueError(f"{path} holds no labelled lines (`__label__code <text>`)")
    return out


def load_domain_pieces(
    code: list[str], math: list[str], prose: list[str], labels: str | None = None
) -> list[Piece]:
    """All labelled pieces; fails with what to give when a class is missing."""
    pieces = [p for f in code for p in code_pieces(f)] + [p for f in math for p in math_pieces(f)]
    pieces += [p for f in prose for p in read_pieces(f, PROSE)]
    if labels:
        pieces += label_file_pieces(labels)
    counts = {name: sum(p.label == i for p in pieces) for i, name in enumerate(LABELS)}
    missing = [name for name, n in counts.items() if n < 5]
    if missing:
        raise ValueError(
            f"too little training text for {missing} (pieces per class: {counts}): give CODE=<GitHub repositories "
            "or StackExchange dumps> MATH=<arXiv sources or math StackExchange dumps> PROSE=<web pages, "
            "Wikipedia> or DOMAIN_LABELS=<fastText label file>"
        )
    log.info("domain training pieces per class: %s", counts)
    return pieces
