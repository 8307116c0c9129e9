"""Generated WARC files of HTTP 200 responses, for the reader, stage and hostile-input tests."""

from __future__ import annotations

import io


def warc_bytes(
    records: list[tuple[str, bytes]],
    gz: bool = True,
    content_type: str = "text/html; charset=utf-8",
    urn: str = "test",
    urls: dict[str, str] | None = None,
    dates: dict[str, str] | None = None,
) -> bytes:
    """A WARC of HTTP 200 responses (record id ``<urn:{urn}:{rid}>``), gzipped per record unless ``gz`` is false;
    ``urls`` gives a record's target URI (default ``https://example.org/<rid>``), ``dates`` its WARC-Date."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gz)
    for rid, payload in records:
        http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
        headers = {"WARC-Record-ID": f"<urn:{urn}:{rid}>"}
        if dates and rid in dates:
            headers["WARC-Date"] = dates[rid]
        writer.write_record(
            writer.create_warc_record(
                (urls or {}).get(rid, f"https://example.org/{rid}"),
                "response",
                payload=io.BytesIO(payload),
                http_headers=http,
                warc_headers_dict=headers,
            )
        )
    return buf.getvalue()
