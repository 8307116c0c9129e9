"""Inputs whose file names are not valid UTF-8 (CommonCrawl, books, StackExchange, Wikipedia): processed like any
other input, under a stable key; every valid UTF-8 path keeps the key it always had (sha1 of its UTF-8 bytes)."""

from __future__ import annotations

import hashlib
import json
import os

import duckdb
import pytest

from pipelines.core import storage
from pipelines.core.layout import input_key, path_bytes, printable_path
from tests.helpers.ops_hostile import PAGE, _warc
from tests.helpers.paths import FIXTURES
from tests.helpers.sources import all_stats, assert_accounting, read_kind, run_source

BAD = os.fsdecode(b"caf\xe9-\xff")  # Latin-1 bytes in a name: not valid UTF-8, reaches Python as surrogates


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def test_keys_of_valid_paths_are_unchanged_and_bad_names_get_a_stable_key(tmp_path):
    for name in ("plain.warc.gz", "été/中文 name.txt", "a b\\c.txt"):
        path = str(tmp_path / name)
        assert input_key(path) == _sha(os.path.abspath(path).encode("utf-8"))
    bad = str(tmp_path / f"{BAD}.txt")
    assert path_bytes(bad) == os.fsencode(bad)
    assert input_key(bad) == _sha(os.fsencode(os.path.abspath(bad))) == input_key(bad)
    assert input_key(bad) != input_key(str(tmp_path / "caf\u00e9-\u00ff.txt"))  # the same name, valid UTF-8
    assert printable_path(bad).endswith("caf\\xe9-\\xff.txt")
    assert printable_path("s3://bucket/été.txt") == "s3://bucket/été.txt"


def test_json_with_undecodable_names_is_valid_utf8_and_readable_by_duckdb(tmp_path):
    data = storage.json_bytes({"input": f"/in/{BAD}", "errors": [f"cannot read /in/{BAD}"], "ok": "été"})
    data.decode("utf-8")  # strict
    assert json.loads(data) == {
        "input": "/in/caf\\xe9-\\xff",
        "errors": ["cannot read /in/caf\\xe9-\\xff"],
        "ok": "été",
    }
    assert (
        storage.json_bytes({"ok": "été"}) == json.dumps({"ok": "été"}, indent=1, ensure_ascii=False).encode()
    )
    (tmp_path / "s.json").write_bytes(data)
    rows = duckdb.sql(f"SELECT input, ok FROM read_json_auto('{tmp_path / 's.json'}')").fetchall()
    assert rows == [("/in/caf\\xe9-\\xff", "été")]


def _check_run(out: str, source: str, n_inputs: int) -> list[dict]:
    assert_accounting(out, source)
    stats = all_stats(out, source)
    assert len(stats) == n_inputs and not any(s["errors"] for s in stats), stats
    for name in ("summary.json", *(os.path.join("stats", f"{s['key']}.json") for s in stats)):
        with open(os.path.join(out, source, name), "rb") as f:
            f.read().decode("utf-8")
    return stats


def test_books_with_undecodable_names_are_read_and_rerun_skips_them(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    book = (tmp_path / "x").parent / "x"  # noqa: F841 - readability
    with open(os.path.join(FIXTURES, "books", "pg90001.txt"), "rb") as f:
        data = f.read()
    with open(os.path.join(FIXTURES, "books", "pg90003-8.txt"), "rb") as f:
        other = f.read()
    os.makedirs(os.path.join(str(src), BAD))
    with open(os.path.join(str(src), BAD, f"{BAD}.txt"), "wb") as f:
        f.write(data)
    (src / "good.txt").write_bytes(other)
    out = str(tmp_path / "out")
    res = run_source("books", str(src), out, {"corpus_stages": {"book_dedup": {"enabled": False}}})
    assert res.processed == 2
    stats = _check_run(out, "books", 2)
    inputs = sorted(s["input"] for s in stats)
    assert inputs[0].endswith("in/caf\\xe9-\\xff/caf\\xe9-\\xff.txt")
    ids = sorted(read_kind(out, "books", "docs").column("id").to_pylist())
    assert ids == ["gutenberg:90001:caf\\xe9-\\xff.txt", "gutenberg:90003:good.txt"]
    bad_path = os.path.join(str(src), BAD, f"{BAD}.txt")
    assert os.path.exists(os.path.join(out, "books", "_done", f"{input_key(bad_path)}.json"))
    again = run_source("books", str(src), out, {"corpus_stages": {"book_dedup": {"enabled": False}}})
    assert again.processed == 0 and again.already_done == 2


def test_warc_and_zip_with_undecodable_names(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with open(os.path.join(str(src), f"{BAD}.warc.gz"), "wb") as f:
        f.write(_warc([("one", PAGE), ("two", PAGE.replace(b"Rivers", b"Lakes"))], urn="names"))
    out = str(tmp_path / "out")
    from pipelines.sources.commoncrawl import without_models

    run_source("commoncrawl", str(src), out, without_models())
    (stats,) = _check_run(out, "commoncrawl", 1)
    assert stats["read"] == 2 and stats["input"].endswith("caf\\xe9-\\xff.warc.gz")

    import zipfile

    zsrc = tmp_path / "zin"
    zsrc.mkdir()
    with open(os.path.join(FIXTURES, "books", "pg90002.txt"), "rb") as f:
        data = f.read()
    with zipfile.ZipFile(os.path.join(str(zsrc), f"{BAD}.zip"), "w") as zf:
        zf.writestr("pg90002.txt", data)
    zout = str(tmp_path / "zout")
    run_source("books", str(zsrc), zout, {"corpus_stages": {"book_dedup": {"enabled": False}}})
    (zstats,) = _check_run(zout, "books", 1)
    assert read_kind(zout, "books", "docs").column("id").to_pylist() == [
        "gutenberg:90002:caf\\xe9-\\xff.zip/pg90002.txt"
    ]
    assert zstats["kept"] == 1


@pytest.mark.parametrize("source", ["stackexchange", "wikipedia"])
def test_xml_dumps_in_undecodable_folders(tmp_path, source):
    from tests.pipelines.sources.test_wikipedia import _page

    folder = os.path.join(str(tmp_path), "in", f"{BAD}.stackexchange.com")
    os.makedirs(folder)
    if source == "stackexchange":
        path = os.path.join(folder, "Posts.xml")
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
            '  <row Id="1" PostTypeId="1" Score="3" Title="Why?" Body="&lt;p&gt;Because.&lt;/p&gt;" />\n'
            '  <row Id="2" PostTypeId="2" ParentId="1" Score="5" Body="&lt;p&gt;It is so.&lt;/p&gt;" />\n'
            "</posts>\n"
        )
        with open(path, "w", encoding="utf-8") as f:
            f.write(xml)
    else:
        path = os.path.join(folder, f"{BAD}.xml")
        page = _page(7, "River", "A river is a natural stream of water flowing towards the sea. " * 20)
        with open(path, "w", encoding="utf-8") as f:  # no <siteinfo>: the dump is named after its file
            f.write(f"<mediawiki>\n{page}</mediawiki>\n")
    out = str(tmp_path / "out")
    run_source(source, path, out, {"reader": {"languages": None}} if source == "wikipedia" else None)
    (stats,) = _check_run(out, source, 1)
    rows = read_kind(out, source, "docs").to_pylist() + read_kind(out, source, "rejected").to_pylist()
    if source == "stackexchange":  # <site>:<question id>
        assert [r["id"] for r in rows] == ["caf\\xe9-\\xff.stackexchange.com:1"]
    else:  # no <siteinfo>: <the file's name>:<page id>@<folder>/<file>
        assert [r["id"] for r in rows] == [
            "caf\\xe9-\\xff:7@caf\\xe9-\\xff.stackexchange.com/caf\\xe9-\\xff.xml"
        ]
