"""Training text for the quality models, read from local files through the pipeline's own readers.

Reference-quality text (the positives of the wiki-reference classifier, the KenLM training text): Wikipedia articles
(:class:`~pipelines.readers.wikipedia.WikipediaReader`, text by :func:`filters.wikitext.wikitext_to_prose`), Project
Gutenberg books (decoded as the books reader does, header and licence cut by :mod:`filters.gutenberg`), arXiv papers
(:class:`~pipelines.readers.arxiv.ArxivReader`: the main file with its inputs inlined, then
:func:`filters.latex.latex_to_prose`) and the top-scored StackExchange answers (streamed by the reader's XML reader,
text by :func:`filters.html_text.html_to_prose`; whole question threads come from the reader itself).  Web text
(the negatives, and the sample that sets the perplexity buckets): extracted pages from WARC/HTML files and CCNet
JSONL.  The Wikipedia and StackExchange conversions are the ones the shipped models were trained on, so that their
recorded held-out splits still hold.

Every function yields :class:`Doc` (text, origin, language) and knows nothing about models; nothing here has a
default corpus: the caller names the files (:mod:`classifiers.dataset` walks the user's folders).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from filters.gutenberg import drop_credits, split_gutenberg
from filters.html_text import html_to_prose
from filters.latex import latex_to_prose
from filters.wikitext import wikitext_to_prose
from pipelines.core.recipe import Skip
from pipelines.readers.arxiv import ArxivReader
from pipelines.readers.books import decode_book
from pipelines.readers.stackexchange import StackExchangeReader
from pipelines.readers.wikipedia import WikipediaReader
from pipelines.readers.xmlstream import iter_elements

log = logging.getLogger(__name__)


@dataclass
class Doc:
    text: str
    origin: str
    lang: str = "en"


def documents(rows: Iterator[dict[str, Any] | Skip], keep: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """A reader's documents, without its skips and the rows it already rejects (``reason``) unless the reason is
    one of ``keep``."""
    return (r for r in rows if isinstance(r, dict) and (not r.get("reason") or r["reason"] in keep))


# -- Wikipedia ---------------------------------------------------------------------------------------------------
def wiki_pages(path: str, languages: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Article rows of a MediaWiki dump read by the Wikipedia reader (``title``, ``lang``, raw ``wikitext``), with
    ``text`` converted by :func:`filters.wikitext.wikitext_to_prose`, the conversion the shipped models were
    trained on.  Redirects and other namespaces are left out as the recipe leaves them; disambiguation pages stay
    (the models' recorded held-out splits number the articles of a dump with them)."""
    reader = WikipediaReader(languages=languages, keep_wikitext=True)
    for row in documents(reader.read(path), keep=("wiki:disambiguation",)):
        try:
            row["text"] = wikitext_to_prose(row["wikitext"])
        except Exception as exc:  # noqa: BLE001 - one page mwparserfromhell cannot take is skipped, not fatal
            log.debug("wikitext conversion failed: %s", exc)
            continue
        yield row


def wikipedia_docs(path: str, min_chars: int = 200) -> Iterator[Doc]:
    """Articles of a MediaWiki XML dump, as text; language from the dump."""
    for row in wiki_pages(path):
        if len(row["text"]) >= min_chars:
            yield Doc(row["text"], f"wikipedia:{os.path.basename(path)}", row.get("lang") or "en")


# -- books, arXiv, StackExchange -----------------------------------------------------------------------------------
def chunk_paragraphs(text: str, size: int = 2000) -> Iterator[str]:
    """Consecutive paragraphs grouped into pieces of about ``size`` characters (books and papers are long)."""
    buf: list[str] = []
    n = 0
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        buf.append(para)
        n += len(para)
        if n >= size:
            yield "\n".join(buf)
            buf, n = [], 0
    if n >= size // 4:
        yield "\n".join(buf)


def book_text(path: str) -> str:
    """A book's body: decoded as the books reader decodes, the Gutenberg header, licence and credits cut (a text
    without Gutenberg markers is taken whole)."""
    with open(path, "rb") as f:
        text, _ = decode_book(f.read())
    parts = split_gutenberg(text)
    return drop_credits(parts[1]) if parts else text


def book_docs(path: str) -> Iterator[Doc]:
    for piece in chunk_paragraphs(book_text(path)):
        yield Doc(piece, f"books:{os.path.basename(path)}")


def arxiv_docs(paper: str) -> Iterator[Doc]:
    """A paper (a ``.tex`` file, a folder of them or an archive) read by the arXiv reader, as prose pieces."""
    for row in documents(ArxivReader().read(paper)):
        for piece in chunk_paragraphs(latex_to_prose(row["text"])):
            if sum(c.isalpha() for c in piece) > 0.7 * len(piece):
                yield Doc(piece, f"arxiv:{os.path.basename(paper)}")


def stackexchange_threads(path: str) -> Iterator[dict[str, Any]]:
    """Question threads (``Q:``/``A:`` text, ``meta`` with tags and answer scores) of a site's ``Posts.xml``."""
    return documents(StackExchangeReader(max_sites=None).read(path))


def _score(value: str | None) -> int:
    """A post's score as an integer (compared as numbers, never as strings); a malformed one counts as 0."""
    try:
        return int(value or "0")
    except ValueError:
        return 0


def stackexchange_docs(path: str, min_score: int = 3, min_chars: int = 300) -> Iterator[Doc]:
    """Answers (PostTypeId 2) with an integer score >= ``min_score``: the "top answers" of the reference set, each
    one document (the shipped models' recorded splits number them so), streamed by the StackExchange reader's XML
    reader, text by :func:`filters.html_text.html_to_prose`."""
    site = os.path.basename(os.path.dirname(path))
    for row in iter_elements(path, ("row",)):
        a = row.attrib
        if a.get("PostTypeId") == "2" and _score(a.get("Score")) >= min_score:
            text = html_to_prose(a.get("Body", ""))
            if len(text) >= min_chars:
                yield Doc(text, f"stackexchange:{site}")


# -- web text ------------------------------------------------------------------------------------------------------
def jsonl_docs(path: str, origin: str) -> Iterator[Doc]:
    """JSON lines with ``text`` (and optionally ``lang``/``metadata.language``): CCNet output, fixtures."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            lang = row.get("lang") or (row.get("metadata") or {}).get("language") or "en"
            if row.get("text"):
                yield Doc(row["text"], origin, lang)


def warc_pages(path: str) -> list[tuple[str, str]]:
    """(url, text) of the pages of a WARC file, extracted with the CommonCrawl recipe's own reader and step."""
    import pyarrow as pa

    from filters.extract import ExtractText
    from pipelines.readers.warc import WarcReader

    rows = list(documents(WarcReader().read(path)))
    if not rows:
        return []
    table = pa.table(
        {"text": [r.get("text") or "" for r in rows], "content_format": [r["content_format"] for r in rows]}
    )
    extract = ExtractText(timeout_s=120.0)  # training text must not depend on machine load
    # nor on what this process extracted before: trafilatura's paragraph dedup remembers pages across calls
    extract.start_input(path)
    result = extract(table)
    texts = result.table.column("text").to_pylist()
    return [
        (r.get("url") or "", t or "")
        for r, t, why in zip(rows, texts, result.reasons or [None] * len(rows), strict=True)
        if why is None
    ]


def warc_docs(path: str, min_chars: int = 200) -> Iterator[Doc]:
    """Pages of a WARC file (:func:`warc_pages`) long enough to train on."""
    for _, text in warc_pages(path):
        if len(text) >= min_chars:
            yield Doc(text, f"web:{os.path.basename(path)}")


def html_docs(path: str, min_chars: int = 200) -> Iterator[Doc]:
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    text = trafilatura.extract(open(path, encoding="utf-8", errors="replace").read(), favor_precision=True)
    if text and len(text) >= min_chars:
        yield Doc(text, f"web:{os.path.basename(path)}")


# -- corpora -------------------------------------------------------------------------------------------------------
def read_file(path: str) -> Iterator[Doc]:
    """Dispatch on the file's kind (by name and folder)."""
    name = os.path.basename(path)
    if name == "Posts.xml":
        yield from stackexchange_docs(path)
    elif name.endswith(".xml") or (name.endswith(".bz2") and ".xml" in name):
        yield from wikipedia_docs(path)
    elif name.endswith(".tex"):
        yield from arxiv_docs(path)
    elif name.endswith(".txt"):
        yield from book_docs(path)
    elif name.endswith(".jsonl"):
        yield from jsonl_docs(path, "reference" if "reference" in name else f"web:{name}")
    elif name.endswith((".warc.gz", ".warc")):
        yield from warc_docs(path)
    elif name.endswith(".html"):
        yield from html_docs(path)
    else:
        raise ValueError(f"do not know how to read {path}")


def read_corpus(files: list[str]) -> list[Doc]:
    docs: list[Doc] = []
    for path in files:
        try:
            docs.extend(read_file(path))
        except Exception as exc:  # noqa: BLE001 - a broken file is reported and skipped
            log.warning("skipping %s: %s", path, exc)
    return docs
