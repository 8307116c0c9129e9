"""Project Gutenberg plain texts: a ``.txt`` is one book; a ``.zip`` holds one or more (read in memory, capped).

PG files come as UTF-8 (``-0.txt``), Latin-1 (``-8.txt``) or ASCII, with CRLF line ends.  The encoding is detected,
not assumed: UTF-8 (strict, BOM allowed) first, then the header's ``Character set encoding:``, then cp1252/Latin-1
(which decode anything; the choice is recorded in ``meta.charset``).  Line ends become ``\\n``.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines.core.recipe import Reader, Skip
from pipelines.readers.archive import Limits, Refused, iter_tree

_DECLARED = re.compile(rb"Character set encoding:[ \t]*([A-Za-z0-9_\-]+)", re.IGNORECASE)
_EBOOK = re.compile(r"\[E-?(?:Book|Text) #(\d+)\]", re.IGNORECASE)


def decode_book(data: bytes) -> tuple[str, str]:
    """(text, charset) of a PG file's bytes, with LF line ends."""
    candidates = ["utf-8-sig"]
    if m := _DECLARED.search(data[:20_000]):
        try:
            candidates.append(codecs.lookup(m.group(1).decode("ascii")).name)
        except LookupError:
            pass
    candidates += ["cp1252", "latin-1"]
    for cs in candidates:
        try:
            text = data.decode(cs)
        except UnicodeDecodeError:
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n"), "utf-8" if cs == "utf-8-sig" else cs
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


@dataclass
class BooksReader(Reader):
    """One document per book; ``id`` is ``gutenberg:<ebook number>:<file>`` (``file:<file>`` without a number)."""

    patterns: ClassVar[tuple[str, ...]] = ("**/*.txt", "**/*.zip")
    batch_size: int = 16
    #: books larger than this are rejected (``read:book_too_large``) with their first bytes as text
    max_book_bytes: int = 50_000_000
    max_total_bytes: int = 500_000_000
    max_members: int = 10_000

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        base = os.path.basename(path)
        if path.lower().endswith(".zip"):
            limits = Limits(self.max_book_bytes, self.max_total_bytes, self.max_members)
            for item in iter_tree(path, limits):
                if isinstance(item, Refused):
                    yield Skip(item.reason)
                elif not item.path.lower().endswith(".txt"):
                    yield Skip("skip:not_txt")
                else:
                    yield self._book(f"{base}/{item.path}", item.data, item.size)
            return
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            data = f.read(self.max_book_bytes + 1)
        yield self._book(base, data if len(data) <= self.max_book_bytes else None, size)

    def _book(self, name: str, data: bytes | None, size: int) -> dict[str, Any]:
        if data is None:
            return {
                "id": f"file:{name}",
                "text": "",
                "meta": {"file": name, "bytes": size},
                "reason": "read:book_too_large",
            }
        text, charset = decode_book(data)
        m = _EBOOK.search(text[:20_000])
        doc_id = f"gutenberg:{m.group(1)}:{name}" if m else f"file:{name}"
        url = f"https://www.gutenberg.org/ebooks/{m.group(1)}" if m else None
        return {"id": doc_id, "url": url, "text": text, "meta": {"file": name, "charset": charset}}
