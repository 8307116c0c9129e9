"""Training text for the quality models, read from local files only.

Reference-quality text (the positives of the wiki-reference classifier, the KenLM training text): Wikipedia articles
(wikitext → text with mwparserfromhell), Project Gutenberg books (header/licence stripped), arXiv LaTeX (comments and
preamble dropped) and the top-scored StackExchange answers (scores compared as integers, not strings).  Web text (the
negatives, and the sample that sets the perplexity buckets): extracted pages from WARC/HTML files and CCNet JSONL.

Every reader yields :class:`Doc` (text, origin, language) and knows nothing about models; nothing here has a
default corpus: the caller names the files (:mod:`classifiers.dataset` walks the user's folders).
"""

from __future__ import annotations

import bz2
import html
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Doc:
    text: str
    origin: str
    lang: str = "en"


# -- Wikipedia ---------------------------------------------------------------------------------------------------
_WIKI_LANG = re.compile(r"xml:lang=\"([a-z-]+)\"")


def _open_text(path: str):
    return bz2.open(path, "rt", encoding="utf-8") if path.endswith(".bz2") else open(path, encoding="utf-8")


def wikitext_to_text(wikitext: str) -> str:
    """Plain prose from wikitext: templates, tables, refs and markup dropped (mwparserfromhell), headings kept."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for tag in code.filter_tags(recursive=True):
        if str(tag.tag).lower() in ("ref", "table", "gallery", "math", "timeline"):
            try:
                code.remove(tag)
            except ValueError:
                pass
    text = code.strip_code(normalize=True, collapse=True, keep_template_params=False)
    lines = []
    for line in text.splitlines():
        line = line.strip().strip("=").strip()
        if not line or line.startswith(("Category:", "File:", "Image:", "thumb|")):
            continue
        lines.append(line)
    return "\n".join(lines)


def wikipedia_docs(path: str, min_chars: int = 200) -> Iterator[Doc]:
    """Articles (namespace 0, not redirects) of a MediaWiki XML dump, as text; language from the dump header."""
    with _open_text(path) as f:
        head = f.read(2000)
    m = _WIKI_LANG.search(head)
    lang = m.group(1) if m else "en"
    with _open_text(path) as f:
        for _, elem in ET.iterparse(f, events=("end",)):
            if not elem.tag.endswith("}page") and elem.tag != "page":
                continue
            ns = next((c.text for c in elem if c.tag.endswith("ns")), "0")
            redirect = any(c.tag.endswith("redirect") for c in elem)
            body = ""
            for rev in (c for c in elem if c.tag.endswith("revision")):
                for c in rev:
                    if c.tag.endswith("text"):
                        body = c.text or ""
            elem.clear()
            if ns != "0" or redirect or body.lstrip().lower().startswith("#redirect"):
                continue
            try:
                text = wikitext_to_text(body)
            except Exception as exc:  # noqa: BLE001 - one malformed page is skipped, not fatal
                log.debug("wikitext conversion failed: %s", exc)
                continue
            if len(text) >= min_chars:
                yield Doc(text, f"wikipedia:{os.path.basename(path)}", lang)


# -- books, arXiv, StackExchange -----------------------------------------------------------------------------------
_PG_START = re.compile(r"\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n", re.I)
_PG_END = re.compile(r"\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)


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


def book_docs(path: str) -> Iterator[Doc]:
    raw = open(path, "rb").read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n")
    start, end = _PG_START.search(text), _PG_END.search(text)
    text = text[start.end() if start else 0 : end.start() if end else len(text)]
    for piece in chunk_paragraphs(text):
        yield Doc(piece, f"books:{os.path.basename(path)}")


_TEX_COMMENT = re.compile(r"(?<!\\)%.*")
_TEX_ENV_DROP = re.compile(r"\\begin\{(equation|align|figure|table|tabular)\*?\}.*?\\end\{\1\*?\}", re.S)
_TEX_CMD_ARG = re.compile(r"\\(?:cite[pt]?|ref|label|eqref|url|includegraphics)\*?(?:\[[^\]]*\])?\{[^}]*\}")
_TEX_CMD = re.compile(r"\\[a-zA-Z]+\*?(?:\[[^\]]*\])?")


def tex_to_text(tex: str) -> str:
    """A light LaTeX → prose conversion (the arXiv recipe does the real cleanup): body only, no maths environments."""
    if "\\begin{document}" in tex:
        tex = tex.split("\\begin{document}", 1)[1]
    tex = tex.split("\\end{document}", 1)[0]
    tex = _TEX_COMMENT.sub("", tex)
    tex = _TEX_ENV_DROP.sub("", tex)
    tex = _TEX_CMD_ARG.sub("", tex)
    tex = re.sub(r"\$[^$]*\$", "", tex)
    tex = _TEX_CMD.sub("", tex)
    return tex.replace("{", "").replace("}", "").replace("~", " ")


def arxiv_docs(path: str) -> Iterator[Doc]:
    text = tex_to_text(open(path, encoding="utf-8", errors="replace").read())
    for piece in chunk_paragraphs(text):
        if sum(c.isalpha() for c in piece) > 0.7 * len(piece):
            yield Doc(piece, f"arxiv:{os.path.basename(path)}")


def strip_html(body: str) -> str:
    body = re.sub(r"<(pre|code)>.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"</?(p|br|li|h\d|blockquote)[^>]*>", "\n", body)
    return html.unescape(re.sub(r"<[^>]+>", "", body)).strip()


def stackexchange_answers(path: str, min_score: int = 3, min_chars: int = 300) -> Iterator[Doc]:
    """Answers (PostTypeId 2) with an integer score >= ``min_score``: the "top answers" of the reference set."""
    for _, elem in ET.iterparse(path, events=("end",)):
        if elem.tag != "row":
            continue
        a = elem.attrib
        if a.get("PostTypeId") == "2":
            try:
                score = int(a.get("Score", "0"))
            except ValueError:
                score = 0
            if score >= min_score:
                text = strip_html(a.get("Body", ""))
                if len(text) >= min_chars:
                    yield Doc(text, f"stackexchange:{os.path.basename(os.path.dirname(path))}")
        elem.clear()


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


def warc_docs(path: str, min_chars: int = 200) -> Iterator[Doc]:
    """Pages of a WARC file, extracted with the CommonCrawl recipe's own reader and ExtractText step."""
    import pyarrow as pa

    from filters.extract import ExtractText
    from pipelines.readers.warc import WarcReader

    rows = [r for r in WarcReader().read(path) if isinstance(r, dict) and not r.get("reason")]
    if not rows:
        return
    table = pa.table(
        {"text": [r.get("text") or "" for r in rows], "content_format": [r["content_format"] for r in rows]}
    )
    step = ExtractText(timeout_s=120.0)  # training text must not depend on machine load
    result = step(table)
    for text, why in zip(result.table.column("text").to_pylist(), result.reasons or [], strict=True):
        if why is None and text and len(text) >= min_chars:
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
        yield from stackexchange_answers(path)
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
