"""Integrity checks for compressed inputs whose readers stop quietly at a truncation.

warcio (and tarfile, when the compressed data happens to hold the last member whole) end without an error when a
``.gz`` file is cut short, so the last record would vanish unrecorded.  ``gzip_truncation`` streams the file through
zlib once (every member of a multi-member gzip, as WARCs are) and says whether it ends inside a member.
"""

from __future__ import annotations

import zlib

from pipelines.core.recipe import ReadError

_CHUNK = 1 << 20


class GzipCheck:
    """The check of :func:`gzip_truncation`, fed chunk by chunk (so a stream read once, e.g. from object storage,
    is checked as it goes by instead of being read a second time)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)
        self._fed = False  # has the current member's decompressor been given input?
        self.problem: str | None = None

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data and self.problem is None:
            self._fed = True
            try:
                self._d.decompress(data, _CHUNK)
            except zlib.error as exc:
                self.problem = f"corrupt gzip data: {exc}"
                return
            if self._d.eof:  # member complete: the rest of the input starts the next member
                data, self._d, self._fed = self._d.unused_data, zlib.decompressobj(wbits=31), False
                if data.strip(b"\x00") == b"":  # zero padding after the last member is tolerated
                    data = b""
            else:
                data = self._d.unconsumed_tail

    def result(self) -> str | None:
        """None if everything fed so far is a complete gzip stream, else what is wrong with it."""
        if self.problem is None and self._fed and not self._d.eof:
            return "file ends inside a gzip member: the last record is cut short"
        return self.problem


def gzip_truncation(path: str) -> str | None:
    """None if ``path`` is a complete gzip stream, else what is wrong with it.  Output is discarded in slices of
    ``_CHUNK`` bytes, so a bomb (100 MB of one repeated line in a few KB) costs time, not memory."""
    check = GzipCheck()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            check.feed(chunk)
            if check.problem:
                return check.problem
    return check.result()


def raise_if_truncated(path: str) -> None:
    """Raise :class:`ReadError` for a cut ``.gz`` (call after the reader has yielded what it could)."""
    if path.endswith((".gz", ".tgz")) and (problem := gzip_truncation(path)):
        raise ReadError(problem)
