"""Labelled training text with a deterministic train / held-out split by document.

The unit of the split is a *document*: a Wikipedia article, a whole book, a whole arXiv paper (its folder of .tex
files), a web page, a row of a Parquet/JSONL file.  Long documents are cut into paragraph-sized chunks for
training, and every chunk goes to the side its document went to, so a held-out score is never measured on a chunk
of a book the model saw.  The rule (recorded in each model's MANIFEST) is: within each ``kind`` (``wikipedia``, ``books``,
``arxiv``, ``web``, ...) and language, sort documents by ``sha256(key)``; every
``HOLDOUT_EVERY``-th one, starting with the first, is held out.  Every kind therefore keeps at least one held-out
document, and the split depends only on the document keys, not on reading order or machine.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from classifiers.corpora import arxiv_docs, book_docs, html_docs, jsonl_docs, read_file, warc_docs

log = logging.getLogger(__name__)

HOLDOUT_EVERY = 4
#: reference documents are cut into pieces of about this many characters (books and papers are long)
CHUNK_CHARS = 2000
SPLIT_RULE = (
    "per kind (wikipedia, books, arxiv, web, jsonl, parquet) and language, documents sorted by sha256 of their "
    f"key; ranks 0, {HOLDOUT_EVERY}, {2 * HOLDOUT_EVERY}, ... held out (every {HOLDOUT_EVERY}th, from the first)"
)
#: file names read as training text; anything else in a folder (MANIFEST.md, .bib, images) is ignored
READABLE = (".xml", ".bz2", ".txt", ".tex", ".jsonl", ".parquet", ".html", ".warc.gz", ".warc")


@dataclass
class Piece:
    """A chunk of a document: ``key`` names the document (the unit of the split), ``label`` 1 = reference."""

    text: str
    key: str
    kind: str
    label: int
    lang: str = "en"


def _files(folder: str) -> list[str]:
    if os.path.isfile(folder):
        return [folder]
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} does not exist (give a folder of text files)")
    found = glob.glob(os.path.join(folder, "**", "*"), recursive=True)
    return sorted(f for f in found if os.path.isfile(f) and f.endswith(READABLE) and "MANIFEST" not in f)


def _parquet_docs(path: str) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=None)
    ids = table.column("id").to_pylist() if "id" in table.column_names else range(table.num_rows)
    for i, text in zip(ids, table.column("text").to_pylist(), strict=True):
        if text:
            yield str(i), text


def read_pieces(folder: str, label: int) -> list[Piece]:
    """Every document under ``folder`` as pieces; the key is the path relative to ``folder`` plus a row index
    (an arXiv paper's key is its folder, so its .tex files stay on one side)."""
    base = folder if os.path.isdir(folder) else os.path.dirname(folder)
    out: list[Piece] = []
    papers: set[str] = set()  # arXiv papers read (the reader reads a paper's folder whole)
    for path in _files(folder):
        rel = os.path.relpath(path, base)
        name = os.path.basename(path)
        try:
            if name.endswith(".parquet"):
                docs = [(f"{rel}#{i}", t, "en") for i, t in _parquet_docs(path)]
                kind = "parquet"
            elif name.endswith(".tex"):
                paper = rel.split(os.sep)[0] if os.sep in rel else rel  # a paper = its top folder
                if paper in papers:
                    continue
                papers.add(paper)
                docs = [(paper, d.text, d.lang) for d in arxiv_docs(os.path.join(base, paper))]
                kind = "arxiv"
            elif name.endswith(".txt"):
                docs = [(rel, d.text, d.lang) for d in book_docs(path)]
                kind = "books"
            elif name.endswith(".html"):
                docs = [(rel, d.text, d.lang) for d in html_docs(path)]
                kind = "web"
            elif name.endswith((".warc.gz", ".warc")):
                docs = [(f"{rel}#{i}", d.text, d.lang) for i, d in enumerate(warc_docs(path))]
                kind = "web"
            elif name.endswith(".jsonl"):
                docs = [(f"{rel}#{i}", d.text, d.lang) for i, d in enumerate(jsonl_docs(path, "jsonl"))]
                kind = "jsonl"
            else:  # MediaWiki XML dumps, StackExchange Posts.xml
                docs = [(f"{rel}#{i}", d.text, d.lang) for i, d in enumerate(read_file(path))]
                kind = "stackexchange" if name == "Posts.xml" else "wikipedia"
                docs = [(k, c, lang) for k, t, lang in docs for c in chunk_text(t)]  # long articles
        except (OSError, ValueError, SyntaxError) as exc:  # a broken file is reported and skipped
            log.warning("skipping %s: %s", path, exc)
            continue
        out += [Piece(text, key, kind, label, lang) for key, text, lang in docs]
    return out


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Consecutive lines grouped into pieces of about ``size`` characters (a short text stays whole)."""
    out, buf, n = [], [], 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        buf.append(line)
        n += len(line)
        if n >= size:
            out.append("\n".join(buf))
            buf, n = [], 0
    if buf and (n >= size // 4 or not out):
        out.append("\n".join(buf))
    return out


def is_heldout(keys: list[str]) -> set[str]:
    """The held-out document keys of one kind (see the module docstring)."""
    ranked = sorted(set(keys), key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    return {k for i, k in enumerate(ranked) if i % HOLDOUT_EVERY == 0}


def split(pieces: list[Piece]) -> tuple[list[Piece], list[Piece]]:
    """(train, held-out), whole documents on one side."""
    held: set[tuple[int, str, str]] = set()
    for group in sorted({(p.label, p.kind, p.lang) for p in pieces}):
        keys = [p.key for p in pieces if (p.label, p.kind, p.lang) == group]
        held |= {(group[0], group[1], k) for k in is_heldout(keys)}
    train = [p for p in pieces if (p.label, p.kind, p.key) not in held]
    test = [p for p in pieces if (p.label, p.kind, p.key) in held]
    return train, test


def load_labelled(reference: list[str], web: list[str]) -> list[Piece]:
    """Reference folders (label 1) and web folders (label 0), web pages tagged with their language (lid.176)."""
    ref = [p for folder in reference for p in read_pieces(folder, 1)]
    webp = [p for folder in web for p in read_pieces(folder, 0)]
    if webp:
        from filters.langid import lid_model_path, load_fasttext, predict_languages

        langs, _ = predict_languages(load_fasttext(lid_model_path()), [p.text for p in webp])
        for p, row in zip(webp, langs, strict=True):
            p.lang = row[0] if row else "unknown"
    return ref + webp


def save_jsonl(pieces: list[Piece], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in pieces:
            f.write(json.dumps(p.__dict__, ensure_ascii=False) + "\n")


def load_jsonl(path: str) -> list[Piece]:
    with open(path, encoding="utf-8") as f:
        return [Piece(**json.loads(line)) for line in f if line.strip()]
