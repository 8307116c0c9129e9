"""WARC / WET reader (warcio, which datatrove's WarcReader also uses).

Why not datatrove's ``process_record``: it needs cchardet and libmagic, guesses the charset only by detection (the
samples declare EUC-JP and Latin-1 in headers and <meta>), and drops records silently.  Here every record that is not
a document is counted by reason (``skip:revisit``, ``skip:non_html``, ``skip:truncated``...).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from pipelines.core import storage
from pipelines.core.recipe import Reader, ReadError, Skip
from pipelines.readers.integrity import GzipCheck, raise_if_truncated

HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.IGNORECASE)


def _valid_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def sniff_charset(content_type: str | None, body: bytes) -> list[str]:
    """Candidate charsets in order of authority: HTTP header, <meta> in the first 4 KiB, UTF-8."""
    out: list[str] = []
    if content_type and (m := _HEADER_CHARSET.search(content_type)):
        out.append(_valid_codec(m.group(1)) or "")
    if m := _META_CHARSET.search(body[:4096]):
        out.append(_valid_codec(m.group(1).decode("ascii", "ignore")) or "")
    out.append("utf-8")
    seen: list[str] = []
    for c in out:
        if c and c not in seen:
            seen.append(c)
    return seen


def decode_html(content_type: str | None, body: bytes) -> tuple[str | None, str | None]:
    """Decode a payload: declared charsets first (strict), then detection. Returns (text, charset) or (None, None)."""
    for cs in sniff_charset(content_type, body):
        try:
            return body.decode(cs), cs
        except (UnicodeDecodeError, LookupError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is not None:
        try:
            return body.decode(best.encoding), best.encoding
        except (UnicodeDecodeError, LookupError):
            pass
    return None, None


def _check_archive_start(path: str) -> None:
    """A WARC (or ARC) file starts with a record header.  Anything else (a gzip bomb of NUL bytes, an HTML file
    named .warc) is refused here: warcio would read its first "line" without bound, however long it is."""
    import gzip

    try:
        if storage.is_uri(path):
            with storage.open_input_stream(path, buffer_size=1 << 16) as raw:
                head = gzip.GzipFile(fileobj=raw).read(64) if path.endswith(".gz") else raw.read(64)
        else:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                head = f.read(64)
    except storage.StorageError:
        raise
    except (OSError, EOFError) as exc:
        raise ReadError(f"cannot read the start of the file: {exc}") from None
    if head and not head.lstrip(b"\r\n").startswith((b"WARC/", b"filedesc://")):
        raise ReadError(f"not a WARC/ARC file: it starts with {head[:16]!r}")


def _read_up_to(stream: Any, n: int) -> bytes:
    """Read ``n`` bytes or to the end: warcio's streams may return less than asked from one read()."""
    parts, got = [], 0
    while got < n:
        part = stream.read(min(n - got, 1 << 20))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _parse_http_block(record: Any) -> bool:
    """warcio parses the HTTP status and headers only for http(s) target URIs; a response record whose WARC
    Content-Type says it holds an HTTP message (any URI) gets them parsed here.  False if it holds none."""
    from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

    if "application/http" not in (record.rec_headers.get_header("Content-Type") or "").lower():
        return False
    try:
        record.http_headers = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"]).parse(record.raw_stream)
    except (StatusAndHeadersParserException, EOFError, ValueError):
        return False
    return True


@dataclass
class WarcReader(Reader):
    """Response records holding HTML become documents (``text`` = HTML); WET conversions are already text."""

    patterns: ClassVar[tuple[str, ...]] = ("**/*.warc", "**/*.warc.gz", "**/*.wet", "**/*.wet.gz", "**/*.arc.gz")
    reads_uris: ClassVar[bool] = True  # streams s3:// and gs:// objects (one pass, integrity checked on the way)
    #: payloads above this many bytes are rejected (still written, as rejected rows), not extracted
    max_payload_bytes: int = 20_000_000
    #: HTTP status codes kept (CommonCrawl keeps 200s; redirects and errors carry no page)
    keep_status: tuple[int, ...] = (200,)

    def adds(self) -> dict[str, pa.DataType]:
        return {"warc_date": pa.string(), "content_format": pa.string(), "charset": pa.string()}

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        from warcio.archiveiterator import ArchiveIterator

        _check_archive_start(path)
        if storage.is_uri(path):
            yield from self._read_uri(path)
            return
        with open(path, "rb") as raw:
            for record in ArchiveIterator(raw, arc2warc=True):
                yield self._record(record)
        raise_if_truncated(path)  # warcio stops quietly when a .gz is cut inside a record's headers

    def _read_uri(self, uri: str) -> Iterator[dict[str, Any] | Skip]:
        """One sequential pass over the object; a ``.gz`` is checked for truncation from the same bytes."""
        from warcio.archiveiterator import ArchiveIterator

        check = GzipCheck() if uri.endswith((".gz", ".tgz")) else None
        with storage.open_input_stream(uri, observe=check.feed if check else None) as raw:
            for record in ArchiveIterator(raw, arc2warc=True):
                yield self._record(record)
            raw.drain()
        if check is not None and (problem := check.result()):
            raise ReadError(problem)

    def _record(self, record: Any) -> dict[str, Any] | Skip:
        rtype = record.rec_type
        if rtype == "revisit":
            return Skip("skip:revisit")
        if rtype not in ("response", "conversion"):
            return Skip(f"skip:{rtype or 'unknown'}_record")
        headers = record.rec_headers
        if headers.get_header("WARC-Truncated"):
            return Skip("skip:truncated")
        content_type = None
        if rtype == "response":
            if record.http_headers is None and not _parse_http_block(record):
                return Skip("skip:no_http_headers")  # e.g. dns: records
            status = record.http_headers.get_statuscode()
            try:
                code = int(status)
            except (TypeError, ValueError):
                return Skip("skip:bad_http_status")
            if code not in self.keep_status:
                return Skip(f"skip:http_{code // 100}xx")
            content_type = record.http_headers.get_header("Content-Type") or ""
            ident = headers.get_header("WARC-Identified-Payload-Type")
            mime = (ident or content_type.split(";")[0]).strip().lower()
            if mime and mime not in HTML_TYPES:
                return Skip("skip:non_html")
            fmt = "html"
        else:
            fmt = "text"
        rid = headers.get_header("WARC-Record-ID")
        url = headers.get_header("WARC-Target-URI")
        date = headers.get_header("WARC-Date")
        if not rid:
            return Skip("skip:no_record_id")
        body = _read_up_to(record.content_stream(), self.max_payload_bytes + 1)
        row: dict[str, Any] = {"id": rid.strip("<>"), "url": url, "warc_date": date, "content_format": fmt}
        if len(body) <= self.max_payload_bytes and getattr(record.raw_stream, "limit", 0) > 0:
            # the file ended (a cut gzip, a partial download) before the record's declared Content-Length
            row.update(text=body.decode("utf-8", "replace"), reason="read:truncated_record")
            return row
        if len(body) > self.max_payload_bytes:
            row.update(text=body[: self.max_payload_bytes].decode("utf-8", "replace"), reason="read:payload_too_large")
            return row
        if fmt == "html" and not content_type and not body.lstrip()[:1] == b"<":
            return Skip("skip:non_html")
        if b"\x00" in body[:8192] and fmt == "html":
            row.update(text=body.decode("latin-1"), reason="read:binary_payload")
            return row
        text, charset = decode_html(content_type, body)
        if text is None:
            row.update(text=body.decode("utf-8", "replace"), reason="read:undecodable")
            return row
        row.update(text=text, charset=charset)
        return row
