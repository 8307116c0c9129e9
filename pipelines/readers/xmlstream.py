"""Safe streaming of large XML dumps (StackExchange ``Posts.xml``, MediaWiki exports), plain, ``.bz2`` or ``.gz``.

Why a module of its own: both dump formats are huge single files, so they are parsed with ``lxml.etree.iterparse``
and every finished element is cleared (memory stays bounded by one record), and both must refuse the classic XML
attacks.  Two layers:

1. the prolog (everything before the root element) is read first; a DOCTYPE whose internal subset declares any
   ``<!ENTITY`` is refused with :class:`XmlRefused` (billion laughs, external entities) before the parser sees it.
   A DOCTYPE that only names an external DTD (``<!DOCTYPE posts SYSTEM 'posts.dtd'>``, as in some real copies of
   the StackExchange dumps) is harmless and accepted: the DTD is never loaded.
2. the parser itself runs with ``resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False``, so
   even a file that slips past 1 cannot fetch anything, and a single text node or attribute above libxml2's 10 MB
   limit raises a syntax error instead of growing without bound.

Encodings come from the BOM / XML declaration (UTF-8, UTF-16...), as libxml2 detects them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
from collections.abc import Iterator
from typing import IO, Any

#: bytes of prolog inspected for a DOCTYPE (a prolog longer than this is itself suspicious)
PROLOG_LIMIT = 1 << 20

_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile(r"<!DOCTYPE", re.IGNORECASE)
_ROOT_TAG = re.compile(r"<[^?!]")


class XmlRefused(Exception):
    """The input declares entities or otherwise cannot be read safely; the reason is a short tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def open_compressed(path: str) -> IO[bytes]:
    """Open ``path`` for streaming bytes, decompressing ``.bz2`` / ``.gz`` by their magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(3)
    if magic == b"BZh":
        return bz2.open(path, "rb")
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decode_prolog(head: bytes) -> str:
    """Best-effort decoding of the first bytes, only to look for DOCTYPE / ENTITY (UTF-16 included)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "ignore")
    if len(head) > 1 and head[0] == 0 and head[1] != 0:
        return head.decode("utf-16-be", "ignore")
    if len(head) > 1 and head[1] == 0 and head[0] != 0:
        return head.decode("utf-16-le", "ignore")
    return head.decode("utf-8", "ignore")


def check_prolog(head: bytes) -> None:
    """Refuse a DOCTYPE with an internal subset that declares entities; accept plain SYSTEM/PUBLIC references."""
    text = _decode_prolog(head)
    m = _DOCTYPE.search(text)
    if m is None:
        return
    doctype = text[m.start() :]
    if _ENTITY_DECL.search(doctype):
        raise XmlRefused("xml:entity_declaration", "the DOCTYPE declares entities (possible entity bomb)")


class _PrologTap(io.RawIOBase):
    """A byte stream that first checks the prolog of ``raw``, then hands the parser everything it read."""

    def __init__(self, raw: IO[bytes], max_line_bytes: int | None = None):
        self.raw = raw
        self.max_line_bytes = max_line_bytes
        self._line = 0  # bytes since the last newline
        head = b""
        # read until the root element has started (first '<' that is not '<?' or '<!'), capped
        while len(head) < PROLOG_LIMIT:
            chunk = raw.read(65536)
            if not chunk:
                break
            head += chunk
            if _root_started(head):
                break
        check_prolog(head[:PROLOG_LIMIT])
        self._buf = head
        self.bytes_read = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._buf:
            n = min(len(b), len(self._buf))
            b[:n] = self._buf[:n]
            self._buf = self._buf[n:]
            return n
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.bytes_read += n
        if self.max_line_bytes is not None:
            nl = data.rfind(b"\n")
            self._line = n - nl - 1 if nl >= 0 else self._line + n
            if self._line > self.max_line_bytes:
                raise XmlRefused("xml:line_too_long", f"a line longer than {self.max_line_bytes:,} bytes")
        return n


def _root_started(head: bytes) -> bool:
    """True once a tag that is not a declaration (``<?``, ``<!``) appears: the root element has begun."""
    return _ROOT_TAG.search(_decode_prolog(head)) is not None


def iter_elements(path: str, tags: tuple[str, ...], max_line_bytes: int | None = None) -> Iterator[Any]:
    """Yield each finished element whose local name is in ``tags``; the caller must not keep references.

    After the caller is done with an element it is cleared and detached from its parent, so memory stays bounded.
    Raises :class:`XmlRefused` for a refused prolog and ``lxml.etree.XMLSyntaxError`` for malformed input (the
    caller decides whether to keep what it read before).  ``max_line_bytes`` refuses a file with a longer line
    (bytes since the last ``\n`` byte, which also finds UTF-16 newlines) with :class:`XmlRefused`.
    """
    from lxml import etree

    with open_compressed(path) as raw:
        tap = _PrologTap(raw, max_line_bytes)
        stream = io.BufferedReader(tap, buffer_size=1 << 16)
        context = etree.iterparse(
            stream,
            events=("end",),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            dtd_validation=False,
            remove_comments=True,
            remove_pis=True,
        )
        for _event, elem in context:
            tag = elem.tag
            if not isinstance(tag, str):
                continue
            local = tag.rpartition("}")[2]
            if local in tags:
                yield elem
                elem.clear(keep_tail=False)
                parent = elem.getparent()
                if parent is not None:
                    while elem.getprevious() is not None:
                        del parent[0]


def local_name(elem: Any) -> str:
    tag = elem.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""
