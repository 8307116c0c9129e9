"""Record framing of uncompressed and per-record-gzip WARCs: finding the next record after damage, and keeping
record ids unique within an input (used by :mod:`pipelines.readers.warc`).

A ``Content-Length`` longer than its payload makes a WARC parser read the following records as payload; one that
is not a number (or overflows) stops it.  These helpers find where the next record really starts: the next
``WARC/1.x`` line in an uncompressed file, the next gzip member that decompresses to a WARC header in a
``.warc.gz``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pipelines.core.recipe import Skip

_HEADER_LINE = re.compile(rb"\nWARC/1\.[01]\r?\n")
_DAMAGE = "content_length_mismatch"


def next_warc_header(raw: Any, start: int, chunk: int = 1 << 20) -> int | None:
    """Offset of the first ``WARC/1.0`` / ``WARC/1.1`` line at or after ``start`` in a seekable file, or None
    (then the file position is left where it was, for the reader that goes on)."""
    here = raw.tell()
    pos = start
    raw.seek(max(0, pos - 1))
    tail = b"" if pos == 0 else raw.read(1)  # the byte before ``start``: a header right at ``start`` counts
    while True:
        data = raw.read(chunk)
        if not data:
            raw.seek(here)
            return None
        window = tail + data
        if m := _HEADER_LINE.search(window):
            return pos - len(tail) + m.start() + 1
        tail = window[-16:]
        pos += len(data)


_GZIP_MAGIC = b"\x1f\x8b\x08"


def next_gzip_record(raw: Any, start: int, chunk: int = 1 << 20) -> int | None:
    """Offset of the next gzip member at or after ``start`` that decompresses to a WARC record header (per-record
    gzip, as WARCs are written), or None with the file position unchanged.  Magic bytes inside compressed data
    are rejected by that check."""
    import zlib

    here = raw.tell()
    pos = start
    while True:
        raw.seek(pos)
        data = raw.read(chunk)
        i = data.find(_GZIP_MAGIC)
        if i < 0:
            if len(data) < len(_GZIP_MAGIC):
                raw.seek(here)
                return None
            pos += len(data) - len(_GZIP_MAGIC) + 1
            continue
        raw.seek(pos + i)
        try:
            head = zlib.decompressobj(wbits=31).decompress(raw.read(1 << 16), 64)
        except zlib.error:
            head = b""
        if head.startswith((b"WARC/1.0", b"WARC/1.1")):
            return pos + i
        pos += i + 1


def damaged(item: dict[str, Any] | Skip) -> dict[str, Any] | Skip:
    """The row (rejected) or skip of a record whose ``Content-Length`` does not match its payload."""
    if isinstance(item, Skip):
        return Skip(f"skip:{_DAMAGE}")
    text = item.get("text") or ""
    if (cut := text.find("\nWARC/1.")) >= 0:  # the swallowed records are read again on their own
        text = text[:cut].rstrip("\r\n")
    return {**item, "text": text, "reason": f"read:{_DAMAGE}"}


def unique_ids(items: Iterator[dict[str, Any] | Skip]) -> Iterator[dict[str, Any] | Skip]:
    """Keep the first record of each ``WARC-Record-ID`` in an input; a repeat is ``skip:duplicate_record_id``.

    Ids are unique per input only: inputs are read independently (the unit of resume), so the same id in two
    files is not seen here (exact-duplicate removal catches identical copies)."""
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, Skip):
            if item["id"] in seen:
                item = Skip("skip:duplicate_record_id")
            else:
                seen.add(item["id"])
        yield item
