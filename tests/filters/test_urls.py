"""URL block lists (filters/urls.py): the same decisions as datatrove's URLFilter on the same URLs, user categories
and allow lists, and the recipe's ``url:<category>`` rejections with ``url_category`` kept on rejected rows."""

from __future__ import annotations

import os
import tarfile

import pyarrow.parquet as pq
import pytest

from filters.urls import UrlCategory, _datatrove_assets
from pipelines.runner import run_recipe
from tests.helpers.ops_hostile import _warc
from tests.pipelines.sources.test_commoncrawl import recipe

NORMAL = [
    "https://en.wikipedia.org/wiki/River",
    "https://www.bbc.co.uk/news/science-environment-12345",
    "https://github.com/huggingface/datatrove/blob/main/README.md",
    "http://www.gov.uk/guidance/flood-risk",
    "https://docs.python.org/3/library/re.html",
    "https://example.org/blog/2024/05/how-to-bake-bread/",
    "https://university.example.edu/~jdoe/papers/rivers.pdf",
    "https://shop.example.com/products/garden-hose?ref=home",
    "https://www.sussex.ac.uk/about/",  # a place name holding a soft-banned word inside a longer word
    "https://news.example.com/world/essex-county-council-budget",
]


@pytest.fixture(scope="module")
def datatrove_domains() -> list[str]:
    with tarfile.open(os.path.join(_datatrove_assets(), "url_filterblacklistsv0_3_0.tar.gz"), "r:gz") as tar:
        lines = tar.extractfile("domains").read().decode("utf-8").splitlines()
    return lines[:: len(lines) // 150][:150]  # spread over the whole list, deterministic


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> UrlCategory:
    os.environ.setdefault("WINNOW_CACHE", str(tmp_path_factory.mktemp("cache")))
    step = UrlCategory()
    step.setup()
    return step


def _urls(domains: list[str]) -> list[str]:
    words = [w.strip() for w in open(os.path.join(_datatrove_assets(), "banned_words.txt")) if w[0] != "#"][:20]
    soft = [w.strip() for w in open(os.path.join(_datatrove_assets(), "soft_banned_words.txt")) if w[0] != "#"]
    sub = [w.strip() for w in open(os.path.join(_datatrove_assets(), "banned_subwords.txt")) if w[0] != "#"][:10]
    urls = list(NORMAL)
    urls += [f"http://{d}/index.html" for d in domains]
    urls += [f"https://www.{d}/gallery?page=2" for d in domains[:50]]  # a sub-domain of a listed domain
    urls += [f"https://blog.example.net/{w}/post-17" for w in words]
    urls += [f"https://forum.example.net/{soft[i]}-{soft[i + 1]}/thread" for i in range(0, 20, 2)]
    urls += [f"https://forum.example.net/{soft[i]}/thread" for i in range(20, 30)]  # one soft word: kept
    urls += [f"https://videos.example.net/{s.replace(' ', '')}clips" for s in sub]
    return urls


@pytest.mark.slow
def test_the_same_decisions_as_datatrove_url_filter(ours, datatrove_domains, monkeypatch, tmp_path):
    pytest.importorskip("ahocorasick")
    import tldextract
    from datatrove.data import Document
    from datatrove.pipeline.filters.url_filter import URLFilter

    reference = URLFilter()
    reference.tldextractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # no network in tests
    urls = _urls(datatrove_domains)
    theirs = [reference.filter(Document(text="x", id=str(i), metadata={"url": u})) is not True
              for i, u in enumerate(urls)]
    mine = [ours.category(u) is not None for u in urls]
    assert mine == theirs
    assert sum(mine) > len(datatrove_domains) and sum(not m for m in mine) >= len(NORMAL)  # both kinds tested
    assert all(ours.category(u) is None for u in NORMAL)
    assert all(ours.category(f"http://{d}/") == "adult" for d in datatrove_domains)


def test_user_categories_and_allow_list(tmp_path, datatrove_domains):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "pii.txt").write_text("# people-search sites\nfind-anyone-people.com\nexample.org/staff/directory\n"
                                   "intranet-phonebook\n")
    (lists / "gambling.txt").write_text("lucky-casino-online.net\n")
    step = UrlCategory(lists_dir=str(lists), allow_domains=[datatrove_domains[3]])
    step.setup()
    assert step.category("https://www.find-anyone-people.com/search?q=smith") == "pii"
    assert step.category("http://intranet-phonebook/people") == "pii"  # a host outside the public-suffix list
    assert step.category("example.org/staff/directory") == "pii"
    assert step.category("https://example.org/staff/") is None
    assert step.category("http://lucky-casino-online.net/") == "gambling"
    assert step.category(f"http://{datatrove_domains[3]}/") is None  # allowed although datatrove lists it
    assert step.category(f"http://{datatrove_domains[4]}/") == "adult"
    assert step.category(None) is None and step.category("") is None
    with pytest.raises(FileNotFoundError, match="lists_dir"):
        UrlCategory(lists_dir=str(tmp_path / "missing")).setup()


def test_the_recipe_rejects_listed_domains_with_their_category(tmp_path, datatrove_domains):
    page = (
        b"<html><head><title>Rivers</title></head><body><article><p>Rivers shape the land they cross over thousands "
        b"of years. Water picks up sand and stones in the hills and carries them down towards the sea.</p></article>"
        b"</body></html>"
    )
    warc = tmp_path / "in" / "urls.warc.gz"
    warc.parent.mkdir()
    warc.write_bytes(_warc([("ok", page), ("adult", page)], urn="urls",
                           urls={"ok": "https://en.wikipedia.org/wiki/River",
                                 "adult": f"https://{datatrove_domains[7]}/river"}))
    out = str(tmp_path / "out")
    result = run_recipe(recipe(), str(warc), out, executor="local", progress=False)
    rejected = {r["id"]: r for r in pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()}
    assert rejected["urn:urls:adult"]["reason"] == "url:adult"
    assert rejected["urn:urls:adult"]["url_category"] == "adult"
    assert rejected["urn:urls:adult"]["text"] is not None  # the page is kept whole in rejected/, nothing lost
    assert rejected.get("urn:urls:ok", {}).get("reason") != "url:adult"
    assert result.summary["rejected_by_reason"].get("url:adult") == 1
