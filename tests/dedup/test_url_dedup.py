"""URL-level dedup (dedup/urls.py, UrlDedupStage): the normalisation rules, and in the CommonCrawl recipe two
captures of one page keep the most recent, the other rejected dedup:url."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from dedup.urls import normalize_url
from pipelines.runner import run_recipe
from tests.helpers.sources import assert_accounting
from tests.helpers.warc import warc_bytes
from tests.pipelines.sources.test_commoncrawl import recipe


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://www.example.com/news/floods/", "http://example.com/news/floods"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2&utm_source=mail&fbclid=xyz"),
        ("https://Example.COM:443/", "example.com"),
        ("https://example.com/page#comments", "https://example.com/page"),
    ],
)
def test_captures_of_one_page_share_a_key(a, b):
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/News", "https://example.com/news"),  # paths are case-sensitive
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),  # a real parameter
        ("https://blog.example.com/", "https://example.com/"),  # another host
        ("https://example.com:8080/", "https://example.com/"),  # another port
    ],
)
def test_different_pages_keep_different_keys(a, b):
    assert normalize_url(a) != normalize_url(b)


def _warc(records: list[tuple[str, str, str, bytes]]) -> bytes:
    """WARC responses (id, url, WARC-Date, html)."""
    return warc_bytes(
        [(rid, html) for rid, _, _, html in records],
        urn="url",
        urls={rid: url for rid, url, _, _ in records},
        dates={rid: date for rid, _, date, _ in records},
    )


def _page(version: str) -> bytes:
    return (
        "<html><head><title>Floods</title></head><body><article><p>The river rose again on Tuesday night and reached "
        "the steps of the old mill by morning. Councillors met at noon to discuss the flood defences built after the "
        f"storm of 2013. Most residents said the walls had held.</p><p>{version}</p></article></body></html>"
    ).encode()


def test_two_captures_of_one_url_keep_the_most_recent(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    old = _page("This report was first published in March, when the water had only started to rise slowly.")
    new = _page("Updated in April: the water has fallen again and the ferry across the canal runs once more.")
    (src / "crawl-2024-03.warc.gz").write_bytes(
        _warc([("old", "http://www.example.com/floods/", "2024-03-02T08:00:00Z", old)])
    )
    (src / "crawl-2024-04.warc.gz").write_bytes(
        _warc(
            [
                ("new", "https://example.com/floods?utm_source=feed", "2024-04-11T09:30:00Z", new),
                (
                    "other",
                    "https://example.com/weather",
                    "2024-04-11T09:31:00Z",
                    _page("Another page entirely."),
                ),
            ]
        )
    )
    out = str(tmp_path / "out")
    # the stage is under test, not the quality rules (short generated pages): those are off here
    heuristics_off = {n: {"enabled": False} for n in ("gopher_rep", "gopher", "c4", "fineweb")}
    result = run_recipe(
        recipe(corpus_stages={"minhash": {"enabled": False}}, steps=heuristics_off),
        str(src),
        out,
        executor="local",
        progress=False,
    )
    docs = {d["id"]: d for d in pq.read_table(os.path.join(out, "commoncrawl", "docs")).to_pylist()}
    rejected = {r["id"]: r for r in pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()}
    assert set(docs) == {"urn:url:new", "urn:url:other"}
    assert rejected["urn:url:old"]["reason"] == "dedup:url"
    assert result.summary["corpus_stages"]["url_dedup"]["removed"] == 1
    assert_accounting(out, "commoncrawl")
