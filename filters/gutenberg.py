"""Project Gutenberg boilerplate: strip the header and the license footer, keep the header's bibliographic fields.

The marker lists follow the variants seen across 40 years of PG files (the ``gutenberg`` package's
``strip_headers`` lists, reduced to the ones that delimit the licence text): modern
``*** START OF THE PROJECT GUTENBERG EBOOK …``, the older ``*** START OF THIS PROJECT GUTENBERG EBOOK …`` and
``***START OF THE…`` without spaces, the 1990s ``*END*THE SMALL PRINT!`` form; at the end ``*** END OF THE/THIS
PROJECT GUTENBERG…``, ``End of the Project Gutenberg EBook…`` and ``End of Project Gutenberg's…``.  Lines such as
"END OF THE FIRST EPOCH." are book text: every end marker names Project Gutenberg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from pipelines.core.schema import decode_meta, encode_meta
from pipelines.core.steps import Step, StepResult, set_column, texts

_START = re.compile(
    r"^\s*(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|\*+\s*END\*?\s*THE SMALL PRINT.*"
    r"|\*{3}\s*START OF THE COPYRIGHTED PROJECT GUTENBERG.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|End of (the |this )?Project Gutenberg.*"
    r"|\*{3}\s*END OF THE COPYRIGHTED PROJECT GUTENBERG.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_CREDITS = re.compile(
    r"^\s*(Produced by|E-?text prepared by|This e-?(text|book) was (prepared|produced) by|Transcribed from)",
    re.IGNORECASE,
)
_FIELDS = {
    "title": re.compile(r"^Title:[ \t]*(.+(?:\n[ \t]+\S.*)*)", re.MULTILINE),
    "author": re.compile(r"^Author:[ \t]*(.+(?:\n[ \t]+\S.*)*)", re.MULTILINE),
    "language": re.compile(r"^Language:[ \t]*(.+)", re.MULTILINE),
    "release_date": re.compile(r"^(?:Release|Posting) Date:[ \t]*([^\[\n]+)", re.MULTILINE),
    "ebook_number": re.compile(r"\[E-?(?:Book|Text) #(\d+)\]", re.IGNORECASE),
    "encoding": re.compile(r"^Character set encoding:[ \t]*(.+)", re.MULTILINE),
}


def header_fields(header: str) -> dict[str, str]:
    """Title, author, language, release date, ebook number and declared encoding found in the PG header."""
    out = {}
    for name, pattern in _FIELDS.items():
        if m := pattern.search(header):
            out[name] = re.sub(r"\s+", " ", m.group(1)).strip()
    return out


def split_gutenberg(text: str) -> tuple[str, str, str] | None:
    """(header, body, footer) of a PG text with LF line ends, or ``None`` when no start marker is found."""
    start = None
    for m in _START.finditer(text, 0, max(len(text) // 2, 20_000)):  # markers sit in the first half
        start = m
    if start is None:
        return None
    body_start = _marker_end(text, start)
    end = _END.search(text, body_start)
    body_end = end.start() if end else len(text)
    return text[:body_start], text[body_start:body_end], text[body_end:]


#: the rest of a ``*** START OF ...`` marker wrapped onto the next line(s): short, and closed by ``***``
_MARKER_TAIL = re.compile(r"\n[^\n]{0,200}\*{3}[ \t]*(?=\n|$)")


def _marker_end(text: str, start: re.Match[str]) -> int:
    """Where the body begins: after the start marker, including the line(s) it wraps onto.

    ``*** START OF THIS PROJECT GUTENBERG EBOOK`` / ``THE TITLE ***`` is one marker on two lines (wrapped at 70
    columns in many files); without this the title line and the credits under it leaked into the body.  A marker
    that opens with ``***`` and does not close with ``***`` on its own line ends with the next line (at most two
    further lines) that does."""
    end = start.end()
    line = start.group(0).strip()
    if not line.startswith("*") or line.endswith("*"):
        return end
    for _ in range(2):
        tail = _MARKER_TAIL.match(text, end)
        if tail is not None:
            return tail.end()
        nxt = text.find("\n", end + 1)
        if nxt < 0 or nxt - end > 201 or not text[end + 1 : nxt].strip():
            return start.end()
        end = nxt
    return start.end()


def drop_credits(body: str) -> str:
    """Remove the "Produced by …" paragraph that opens most PG bodies (volunteer credits, not the book)."""
    stripped = body.lstrip("\n")
    if _CREDITS.match(stripped):
        para_end = stripped.find("\n\n")
        stripped = "" if para_end < 0 else stripped[para_end:]
    return stripped.strip("\n") + "\n"


@dataclass
class StripGutenberg(Step):
    """Transform: keep the book body only, move the header's fields into ``meta``.

    A text without a start marker is rejected (``gutenberg:no_start_marker``) unless ``require_markers`` is false,
    since a PG file whose boilerplate cannot be found would carry its licence text into the corpus.
    """

    kind: ClassVar[str] = "transform"
    reads: ClassVar[tuple[str, ...]] = ("text", "meta")

    require_markers: bool = True
    drop_credit_lines: bool = True

    def process(self, batch: pa.Table) -> StepResult:
        new_texts, new_meta, reasons = [], [], []
        changed = 0
        for text, meta in zip(texts(batch), batch.column("meta").to_pylist(), strict=True):
            parts = split_gutenberg(text)
            m = decode_meta(meta)
            if parts is None:
                new_texts.append(text)
                new_meta.append(encode_meta({**m, "gutenberg_markers": False}))
                reasons.append("gutenberg:no_start_marker" if self.require_markers else None)
                continue
            header, body, footer = parts
            m.update(header_fields(header))
            m["gutenberg_markers"] = True
            m["footer_found"] = bool(footer)
            body = drop_credits(body) if self.drop_credit_lines else body.strip("\n") + "\n"
            if not body.strip():
                reasons.append("gutenberg:empty_body")
            else:
                reasons.append(None)
            new_texts.append(body)
            new_meta.append(encode_meta(m))
            changed += 1
        batch = set_column(batch, "text", new_texts, pa.large_string())
        batch = set_column(batch, "meta", new_meta, pa.string())
        return StepResult(batch, reasons, changed)
