"""WARC reader on generated archives: Content-Length that does not match the payload, duplicate record ids, and
the charset fallback order (declared only if real and clean, then UTF-8, then detection biased to cp1252)."""

from __future__ import annotations

import gzip
import io
import re

import pytest

from pipelines.core.recipe import Skip
from pipelines.readers.warc import WarcReader, decode_html
from pipelines.readers.warc_framing import next_gzip_record, next_warc_header
from pipelines.sources.commoncrawl import without_models
from tests.helpers.ops_hostile import PAGE
from tests.helpers.sources import all_stats, assert_accounting, read_kind, run_source
from tests.helpers.warc import warc_bytes


def _records(n: int) -> list[bytes]:
    """``n`` uncompressed single-record WARCs (record ids ``urn:cl:r<i>``), each a distinct page."""
    return [
        warc_bytes([(f"r{i}", PAGE.replace(b"Rivers", f"Rivers{i}".encode()))], gz=False, urn="cl")
        for i in range(n)
    ]


def _request(rid: str) -> bytes:
    """A WARC request record (not a document)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=False)
    http = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.org")], is_http_request=True)
    writer.write_record(
        writer.create_warc_record(
            "https://example.org/",
            "request",
            payload=io.BytesIO(b""),
            http_headers=http,
            warc_headers_dict={"WARC-Record-ID": f"<urn:cl:{rid}>"},
        )
    )
    return buf.getvalue()


def _relength(record: bytes, delta: int) -> bytes:
    """The record with its WARC ``Content-Length`` changed by ``delta`` (the payload stays as it is)."""
    m = re.search(rb"Content-Length: (\d+)", record)
    assert m is not None
    return record[: m.start(1)] + str(int(m.group(1)) + delta).encode() + record[m.end(1) :]


def _read(tmp_path, data: bytes, name: str = "x.warc") -> list:
    path = tmp_path / name
    path.write_bytes(data)
    out = []
    for item in WarcReader().read(str(path)):
        out.append(
            item.reason if isinstance(item, Skip) else (item["id"].rsplit(":", 1)[1], item.get("reason"))
        )
    return out


OK = [(f"r{i}", None) for i in range(6)]


@pytest.mark.parametrize("extra", [40, 700, 1500, 50_000])
def test_a_content_length_longer_than_the_payload_loses_no_following_record(tmp_path, extra):
    recs = _records(6)
    recs[1] = _relength(recs[1], extra)  # swallows one record, several, or the rest of the file
    got = _read(tmp_path, b"".join(recs))
    assert got == [OK[0], ("r1", "read:content_length_mismatch"), *OK[2:]]


def test_a_request_record_with_a_wrong_length_is_a_counted_skip(tmp_path):
    recs = _records(3)
    got = _read(tmp_path, recs[0] + _relength(_request("q"), 900) + recs[1] + recs[2])
    assert got == [OK[0], "skip:content_length_mismatch", OK[1], OK[2]]


def test_a_short_length_or_junk_after_a_record_is_skipped_to_the_next_header(tmp_path):
    recs = _records(4)
    short = _read(tmp_path, recs[0] + _relength(recs[1], -30) + recs[2] + recs[3])
    assert short == [OK[0], OK[1], "skip:junk_after_record", OK[2], OK[3]]
    junk = _read(tmp_path, recs[0] + b"\x00\xffnot a record\r\n" * 20 + recs[1])
    assert junk == [OK[0], "skip:unparsable_record", OK[1]]
    broken = _read(
        tmp_path, recs[0] + recs[1].replace(b"Content-Length: ", b"Content-Length: banana") + recs[2]
    )
    assert broken == [OK[0], "skip:no_http_headers", "skip:junk_after_record", OK[2]], broken
    gz = b"".join(gzip.compress(r) for r in [recs[0], _relength(recs[1], 900), recs[2]])
    assert _read(tmp_path, gz, "x.warc.gz") == [OK[0], ("r1", "read:truncated_record"), OK[2]]


@pytest.mark.parametrize("value", [b"99999999999999999999999", b"-5", b"1e3"])
def test_a_content_length_that_is_no_length_costs_that_record(tmp_path, value):
    recs = _records(3)
    m = re.search(rb"Content-Length: (\d+)", recs[1])
    assert m is not None
    recs[1] = recs[1][: m.start(1)] + value + recs[1][m.end(1) :]
    for data, name in ((b"".join(recs), "x.warc"), (b"".join(gzip.compress(r) for r in recs), "x.warc.gz")):
        got = _read(tmp_path, data, name)
        assert got[0] == OK[0] and got[-1] == OK[2] and all(isinstance(g, str) for g in got[1:-1]), (
            name,
            got,
        )


def test_next_gzip_record_skips_magic_bytes_that_start_no_record(tmp_path):
    recs = [gzip.compress(r) for r in _records(2)]
    data = recs[0] + b"\x1f\x8b\x08 not a member" + gzip.compress(b"not a WARC") + recs[1]
    path = tmp_path / "g"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert next_gzip_record(f, 1, chunk=40) == len(data) - len(recs[1])
        f.seek(3)
        assert next_gzip_record(f, len(data) - len(recs[1]) + 1) is None and f.tell() == 3


def test_the_last_record_cut_short_is_still_truncated(tmp_path):
    recs = _records(3)
    got = _read(tmp_path, recs[0] + recs[1] + _relength(recs[2], 80))
    assert got == [OK[0], OK[1], ("r2", "read:truncated_record")]


def test_next_warc_header_finds_headers_at_line_starts_only(tmp_path):
    data = b"xxWARC/1.0\r\n" + b"a" * 3000 + b"\nWARC/1.1\r\nWARC-Type: response\r\n"
    path = tmp_path / "h"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert next_warc_header(f, 0, chunk=64) == data.index(b"WARC/1.1")
        assert next_warc_header(f, data.index(b"WARC/1.1"), chunk=64) == data.index(b"WARC/1.1")
        f.seek(5)
        assert next_warc_header(f, data.index(b"WARC/1.1") + 1, chunk=64) is None and f.tell() == 5


@pytest.mark.parametrize("gz", [False, True])
def test_duplicate_record_ids_keep_the_first(tmp_path, gz):
    recs = _records(5)
    recs[2], recs[4] = recs[1], recs[1].replace(b"Rivers1", b"Rivers9")  # same id, same or other content
    data = b"".join(gzip.compress(r) if gz else r for r in recs)
    got = _read(tmp_path, data, "x.warc.gz" if gz else "x.warc")
    assert got == [OK[0], OK[1], "skip:duplicate_record_id", OK[3], "skip:duplicate_record_id"]


def test_damaged_warcs_through_the_recipe_account_for_every_record(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    recs = _records(6)
    (src / "overrun.warc").write_bytes(b"".join([recs[0], _relength(recs[1], 1500), *recs[2:]]))
    (src / "dups.warc.gz").write_bytes(b"".join(gzip.compress(r) for r in [recs[0], recs[0], recs[3]]))
    out = str(tmp_path / "out")
    no_minhash = {"corpus_stages": {"minhash": {"enabled": False}}}
    run_source("commoncrawl", str(src), out, {**without_models(), **no_minhash})
    assert_accounting(out, "commoncrawl")
    stats = {s["input"].rsplit("/", 1)[1]: s for s in all_stats(out, "commoncrawl")}
    over, dups = stats["overrun.warc"], stats["dups.warc.gz"]
    assert over["read"] == 6 and over["rejected_by_reason"].get("read:content_length_mismatch") == 1
    assert dups["read"] == 2 and dups["skipped"] == {"skip:duplicate_record_id": 1}
    rows = (
        read_kind(out, "commoncrawl", "docs").to_pylist()
        + read_kind(out, "commoncrawl", "rejected").to_pylist()
    )
    per_input = [r["id"] for r in rows]
    assert sorted(per_input) == sorted(
        ["urn:cl:r0"] * 2 + [f"urn:cl:r{i}" for i in range(1, 6)] + ["urn:cl:r3"]
    )


# -- charsets --------------------------------------------------------------------------------------------------
FRENCH = (
    "<html><body><p>O\u00f9 est la biblioth\u00e8que ? \u00c0 c\u00f4t\u00e9 de l'\u00e9glise, pr\u00e8s du "
    "march\u00e9. \u00c7a co\u00fbte tr\u00e8s cher, m\u00eame pour un \u00e9l\u00e8ve.</p></body></html>"
)
PORTUGUESE = (
    "<p>A informa\u00e7\u00e3o est\u00e1 dispon\u00edvel na p\u00e1gina. S\u00e3o Paulo \u00e9 a maior cidade "
    "do Brasil; a popula\u00e7\u00e3o cresceu ap\u00f3s a d\u00e9cada.</p>"
)
CZECH = (
    "<p>P\u0159\u00edli\u0161 \u017elu\u0165ou\u010dk\u00fd k\u016f\u0148 \u00fap\u011bl \u010f\u00e1belsk\u00e9 "
    "\u00f3dy. \u010cesk\u00e1 republika je vnitrozemsk\u00fd st\u00e1t ve st\u0159edn\u00ed Evrop\u011b.</p>"
)


@pytest.mark.parametrize(
    "declared",
    ["foo-bogus", "rot13", "idna", "hex", "x-user-defined-42", "utf-7", "utf-16", "utf-32", "cp500"],
)
@pytest.mark.parametrize("text", [FRENCH, PORTUGUESE])
def test_latin1_pages_with_a_bogus_declared_charset_are_decoded_as_cp1252(declared, text):
    for content_type, body in (
        (f"text/html; charset={declared}", text.encode("latin-1")),
        ("text/html", f'<meta charset="{declared}">{text}'.encode("latin-1")),
    ):
        got, cs = decode_html(content_type, body, "https://example.org/a")
        assert cs == "cp1252" and got == body.decode("latin-1"), (declared, cs)


def test_detection_is_still_trusted_for_other_scripts_and_central_european_domains():
    got, cs = decode_html("text/html; charset=bogus", CZECH.encode("cp1250"), "https://example.org/")
    assert got == CZECH  # cp1252 cannot decode it (0x9D): detection's cp1250 stands
    hungarian = "<p>Magyarorsz\u00e1g f\u0151v\u00e1rosa Budapest, hivatalos nyelve a magyar, \u0151szint\u00e9n sz\u00e9p.</p>"
    got, cs = decode_html("text/html", hungarian.encode("cp1250"), "https://example.hu/")
    assert got == hungarian and cs != "cp1252"
    cyrillic = (
        "<p>\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430 \u0420\u043e\u0441\u0441\u0438\u0438, \u043a\u0440\u0443\u043f\u043d\u0435\u0439\u0448\u0438\u0439 \u0433\u043e\u0440\u043e\u0434 \u0441\u0442\u0440\u0430\u043d\u044b.</p>"
        * 3
    )
    assert decode_html("text/html; charset=bogus", cyrillic.encode("cp1251"))[0] == cyrillic


def test_declared_latin1_with_windows_1252_bytes_and_boms():
    body = "<p>\u201cQuoted\u201d \u2014 caf\u00e9</p>".encode("cp1252")
    assert decode_html("text/html; charset=iso-8859-1", body) == (body.decode("cp1252"), "cp1252")
    plain = "<p>caf\u00e9</p>".encode("latin-1")
    assert decode_html("text/html; charset=iso-8859-1", plain) == ("<p>caf\u00e9</p>", "iso8859-1")
    assert decode_html("text/html; charset=iso-8859-1", "<p>\u00e9t\u00e9</p>".encode("utf-16")) == (
        "<p>\u00e9t\u00e9</p>",
        "utf-16",
    )


def test_a_declared_charset_that_decodes_the_markup_away_is_not_trusted():
    for text in (FRENCH, PORTUGUESE):
        body = text.encode("latin-1")
        body += b" " * (-len(body) % 4)  # utf-16 and utf-32 would decode it "cleanly" into nonsense
        for declared in ("utf-16", "utf-16-le", "utf-32", "cp500"):
            got, cs = decode_html(f"text/html; charset={declared}", body, "https://example.org/")
            assert (got, cs) == (body.decode("cp1252"), "cp1252"), declared
