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
from pipelines.core.folder import split
from pipelines.core.recipe import Reader, ReadError, Skip
from pipelines.readers.charsets import strict_decode, text_codec
from pipelines.readers.integrity import GzipCheck, raise_if_truncated
from pipelines.readers.warc_framing import damaged, next_gzip_record, next_warc_header, unique_ids

HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.IGNORECASE)


#: single-byte code pages that charset detection confuses with each other on Western European text: a Latin-1
#: page ("où", "crème") is often reported as cp1250 ("où" stays, "crčme" does not)
_SINGLE_BYTE_LATIN = frozenset(
    "cp1250 cp1252 cp1257 cp1258 latin_1 iso8859_2 iso8859_3 iso8859_4 iso8859_9 iso8859_10 iso8859_13 "
    "iso8859_14 iso8859_15 iso8859_16 mac_latin2 mac_roman mac_iceland cp850 cp852 cp775 hp_roman8".split()
)
#: country domains whose legacy pages are Central European (windows-1250 / ISO-8859-2), where browsers also fall
#: back to windows-1250 rather than windows-1252: detection is trusted there
_CENTRAL_EUROPEAN_TLDS = frozenset("cz sk pl hu si hr ro rs ba me mk al".split())
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_C1_CONTROLS = re.compile("[\x80-\x9f]")


def _valid_codec(name: str | None) -> str | None:
    return text_codec(name)


def sniff_charset(content_type: str | None, body: bytes) -> list[str]:
    """Candidate charsets in order of authority: byte-order mark, HTTP header, <meta> in the first 4 KiB, UTF-8.

    A declared name that is not a document charset (unknown, ``rot13``, ``idna``...) is left out."""
    out: list[str] = [codec for bom, codec in _BOMS if body.startswith(bom)][:1]
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


def decode_html(
    content_type: str | None, body: bytes, url: str | None = None
) -> tuple[str | None, str | None]:
    """Decode a payload: BOM, declared charsets and UTF-8 first (each strict), then detection biased to cp1252.

    Returns (text, charset) or (None, None).  Like browsers (WHATWG), a page declared Latin-1 whose bytes
    0x80-0x9F only make sense as windows-1252 (curly quotes, dashes) is decoded as cp1252.  Detection
    (charset_normalizer, as trafilatura uses) tells single-byte Latin code pages apart poorly on short text, so
    when it picks one of them and cp1252 decodes the page at least as cleanly (its mess ratio), cp1252 wins,
    except on Central European country domains (``url``), where browsers fall back to windows-1250 too.

    A declared charset must also keep the markup: if the bytes hold ``<`` but the decoded start does not, the
    declaration is wrong (``utf-16`` or an EBCDIC code page declared on an ASCII-based page decode "cleanly" into
    nonsense) and the next candidate is tried."""
    for cs in sniff_charset(content_type, body):
        text = strict_decode(body, cs)
        if text is None or (b"<" in body[:1024] and "<" not in text[:2048]):
            continue
        if cs in ("latin-1", "iso8859-1", "ascii") and _C1_CONTROLS.search(text):
            text_1252 = strict_decode(body, "cp1252")
            if text_1252 is not None:
                return text_1252, "cp1252"
        return text.removeprefix("\ufeff"), "utf-8" if cs == "utf-8-sig" else cs
    return _detect(body, url)


def _detect(body: bytes, url: str | None) -> tuple[str | None, str | None]:
    from charset_normalizer import from_bytes
    from charset_normalizer.md import mess_ratio

    best = from_bytes(body[:200_000]).best()
    if best is None:
        return None, None
    encoding = best.encoding
    if encoding in _SINGLE_BYTE_LATIN and encoding != "cp1252" and not _central_european(url):
        western = strict_decode(body[:200_000], "cp1252")
        if western is not None and mess_ratio(western, 1.0) <= best.chaos:
            encoding = "cp1252"
    text = strict_decode(body, encoding)
    return (text, encoding) if text is not None else (None, None)


def _central_european(url: str | None) -> bool:
    import urllib.parse

    try:
        host = urllib.parse.urlsplit(url or "").hostname or ""
    except ValueError:
        return False
    return host.rpartition(".")[2].lower() in _CENTRAL_EUROPEAN_TLDS


def _check_archive_start(path: str) -> None:
    """A WARC (or ARC) file starts with a record header.  Anything else (a gzip bomb of NUL bytes, an HTML file
    named .warc) is refused here: warcio would read its first "line" without bound, however long it is."""
    import gzip

    folder, name = split(path)
    try:
        with folder.open_input(name, buffer_size=1 << 16) as raw:
            head = gzip.GzipFile(fileobj=raw).read(64) if path.endswith(".gz") else raw.read(64)
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

    patterns: ClassVar[tuple[str, ...]] = (
        "**/*.warc",
        "**/*.warc.gz",
        "**/*.wet",
        "**/*.wet.gz",
        "**/*.arc.gz",
    )
    reads_uris: ClassVar[bool] = (
        True  # streams s3:// and gs:// objects (one pass, integrity checked on the way)
    )
    #: payloads above this many bytes are rejected (still written, as rejected rows), not extracted
    max_payload_bytes: int = 20_000_000
    #: HTTP status codes kept (CommonCrawl keeps 200s; redirects and errors carry no page)
    keep_status: tuple[int, ...] = (200,)

    def adds(self) -> dict[str, pa.DataType]:
        return {"warc_date": pa.string(), "content_format": pa.string(), "charset": pa.string()}

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        _check_archive_start(path)
        if storage.is_uri(path):
            yield from unique_ids(self._read_uri(path))
            return
        with open(path, "rb") as raw:
            yield from unique_ids(self._records(raw, resync=True))
        raise_if_truncated(path)  # warcio stops quietly when a .gz is cut inside a record's headers

    def _read_uri(self, uri: str) -> Iterator[dict[str, Any] | Skip]:
        """One sequential pass over the object; a ``.gz`` is checked for truncation from the same bytes."""
        check = GzipCheck() if uri.endswith((".gz", ".tgz")) else None
        with storage.open_input_stream(uri, observe=check.feed if check else None) as raw:
            yield from self._records(raw, resync=False)  # a stream read once cannot seek back to a header
            raw.drain()
        if check is not None and (problem := check.result()):
            raise ReadError(problem)

    def _records(self, raw: Any, resync: bool) -> Iterator[dict[str, Any] | Skip]:
        """Each record's row or skip, checked against its ``Content-Length``.

        warcio notices a wrong length only when it moves on and finds no blank line after the declared end
        (``err_count``), or when the file ends first.  Each record is therefore read to its end before its row
        is given out.  In an uncompressed local file the reader then looks for the first ``WARC/1.x`` header
        after the record's start: if it lies inside what the record claimed (a length longer than the payload,
        which swallowed the following records), the record is rejected (``read:content_length_mismatch``, or a
        skip of that name for a record that is not a document) and reading goes on from that header, so the
        swallowed records are read, not lost or turned into phantom skips.  Junk after a record of the right
        length is skipped to the next header (``skip:junk_after_record``).  In a ``.warc.gz`` each record is its
        own gzip member, so the next record starts where it should anyway; a stream (object storage) cannot seek
        back, so there the damaged record is marked and warcio goes on as it can."""
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed
        from warcio.statusandheaders import StatusAndHeadersParserException

        it = ArchiveIterator(raw, arc2warc=True)
        while True:
            try:
                record = next(it)
            except StopIteration:
                return
            except (ArchiveLoadFailed, StatusAndHeadersParserException, OverflowError):
                # junk or a broken header where a record should start (a 23-digit Content-Length overflows):
                # go on from the next header, if any
                if not resync:
                    raise
                gz = it.reader.decompressor is not None
                start = (next_gzip_record if gz else next_warc_header)(raw, it.offset + 1)
                if start is None:
                    raise
                yield Skip("skip:unparsable_record")
                raw.seek(start)
                it = ArchiveIterator(raw, arc2warc=True)
                continue
            errors = it.err_count
            item = self._record(record)
            it.read_to_end()
            cut = getattr(record.raw_stream, "limit", 0) > 0  # the file ended before the declared length
            if it.err_count == errors and not cut:
                yield item
                continue
            seekable = resync and it.reader.decompressor is None and record.format == "warc"
            start = next_warc_header(raw, it.get_record_offset() + 1) if seekable else None
            if start is not None and (
                cut or start < it.offset
            ):  # the next header is inside the claimed block
                yield damaged(item)
            elif cut:  # truly the last record, cut short: its row says read:truncated_record
                yield item
                continue
            else:
                yield item
                yield Skip("skip:junk_after_record")
            if start is not None:
                raw.seek(start)
                it = ArchiveIterator(raw, arc2warc=True)

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
            row.update(
                text=body[: self.max_payload_bytes].decode("utf-8", "replace"),
                reason="read:payload_too_large",
            )
            return row
        if fmt == "html" and not content_type and not body.lstrip()[:1] == b"<":
            return Skip("skip:non_html")
        if b"\x00" in body[:8192] and fmt == "html":
            row.update(text=body.decode("latin-1"), reason="read:binary_payload")
            return row
        text, charset = decode_html(content_type, body, url)
        if text is None:
            row.update(text=body.decode("utf-8", "replace"), reason="read:undecodable")
            return row
        row.update(text=text, charset=charset)
        return row
