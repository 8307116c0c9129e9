"""Project Gutenberg plain texts: a ``.txt`` is one book; a ``.zip`` holds one or more (read in memory, capped).

PG files come as UTF-8 (``-0.txt``), Latin-1 (``-8.txt``) or ASCII, with CRLF line ends, and a few as UTF-16.
The encoding is detected, not assumed: a byte-order mark (UTF-32/UTF-8/UTF-16), UTF-16 without one (NUL bytes in
every other position, or "Project Gutenberg" in UTF-16), UTF-8 (strict), then the header's ``Character set
encoding:`` if it names a real document charset (not ``ROT13``, ``HEX``, ``IDNA``...: :mod:`charsets`) that decodes
the book cleanly, then cp1252/Latin-1 (which decode anything; the choice is recorded in ``meta.charset``).  Line
ends become ``\\n``.  One book that still fails is rejected with its reason; the other books of a zip are read.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines.core import storage
from pipelines.core.recipe import Reader, Skip
from pipelines.readers.archive import Limits, Refused, iter_tree
from pipelines.readers.charsets import strict_decode, text_codec

log = logging.getLogger(__name__)

_DECLARED = re.compile(rb"Character set encoding:[ \t]*([A-Za-z0-9_\-]+)", re.IGNORECASE)
_EBOOK = re.compile(r"\[E-?(?:Book|Text) #(\d+)\]", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _at_even_offset(data: bytes, pattern: bytes) -> bool:
    i = data.find(pattern)
    while i >= 0 and i % 2:
        i = data.find(pattern, i + 1)
    return i >= 0


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` for a BOM-less UTF-16 file: mostly-Latin text has a NUL in every other byte, and a PG
    file names Project Gutenberg in its header; else ``None``."""
    head = data[:20_000]
    for codec in ("utf-16-le", "utf-16-be"):
        for words in ("Project Gutenberg", "PROJECT GUTENBERG"):
            if _at_even_offset(head, words.encode(codec)):  # odd: the other byte order's text, shifted
                return codec
    sample = data[:8192]
    half = len(sample) // 2
    if half < 8:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > 0.3 * half and even < 0.02 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.02 * half:
        return "utf-16-be"
    return None


def decode_book(data: bytes) -> tuple[str, str]:
    """(text, charset) of a PG file's bytes, with LF line ends."""
    candidates = [codec for bom, codec in _BOMS if data.startswith(bom)][:1]
    if utf16 := _utf16_without_bom(data):
        candidates.append(utf16)
    candidates.append("utf-8")
    if (m := _DECLARED.search(data[:20_000])) and (declared := text_codec(m.group(1))):
        candidates.append(declared)
    for cs in (*candidates, "cp1252"):
        text = strict_decode(data, cs)
        if text is None and cs.startswith(("utf-16", "utf-32")):  # a file cut inside its last character
            unit = 2 if cs.startswith("utf-16") else 4
            text = strict_decode(data[: len(data) // unit * unit], cs)
        if text is not None and b"Gutenberg" in data[:20_000] and "Gutenberg" not in text[:40_000]:
            text = None  # a declared EBCDIC (cp037, cp500) decodes the ASCII header into nonsense
        if text is not None:
            text = text.removeprefix("\ufeff")  # utf-16/utf-32 leave no BOM; utf-8-sig neither
            return text.replace("\r\n", "\n").replace("\r", "\n"), "utf-8" if cs == "utf-8-sig" else cs
    text = data.decode("latin-1")  # decodes any bytes
    return text.replace("\r\n", "\n").replace("\r", "\n"), "latin-1"


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
        # a file name that is not valid UTF-8 is named by its bytes (``bad\\xffname.txt``): ids and meta stay
        # valid, stable strings
        base = storage.printable(os.path.basename(path))
        if path.lower().endswith(".zip"):
            limits = Limits(self.max_book_bytes, self.max_total_bytes, self.max_members)
            for item in iter_tree(path, limits):
                if isinstance(item, Refused):
                    yield Skip(item.reason)
                elif not item.path.lower().endswith(".txt"):
                    yield Skip("skip:not_txt")
                else:
                    yield self._guarded_book(f"{base}/{item.path}", item.data, item.size)
            return
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            data = f.read(self.max_book_bytes + 1)
        yield self._guarded_book(base, data if len(data) <= self.max_book_bytes else None, size)

    def _guarded_book(self, name: str, data: bytes | None, size: int) -> dict[str, Any]:
        """One book; a data error in it rejects that book (with its reason), not the books after it in a zip.
        Environment errors (memory, I/O, a missing module) still end the input, so a rerun retries it."""
        try:
            return self._book(name, data, size)
        except (OSError, MemoryError, ImportError):
            raise
        except Exception as exc:  # noqa: BLE001 - any data error of one book is recorded on that book
            log.warning("book %s: %s: %s", name, type(exc).__name__, str(exc)[:200])
            return {
                "id": f"file:{name}",
                "text": "",
                "meta": {"file": name, "bytes": size},
                "reason": f"read:book_error_{type(exc).__name__}",
            }

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
