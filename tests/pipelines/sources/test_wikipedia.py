"""Wikipedia: wikitext → text, page selection (redirects, namespaces, disambiguation, languages), encodings,
compression and hostile dumps."""

from __future__ import annotations

import bz2
import gzip
import json
import os

import pyarrow.parquet as pq
import pytest

from filters.wikitext import drop_tables, is_disambiguation, wikitext_to_text
from pipelines.core.recipe import Skip
from pipelines.readers.wikipedia import WikipediaReader
from pipelines.readers.xmlstream import XmlRefused
from tests.helpers.paths import FIXTURES, corpus_path
from tests.helpers.sources import run_source, run_source_peak_mb

WIKI_FIXTURES = os.path.join(FIXTURES, "wikipedia")
ENWIKI = os.path.join(WIKI_FIXTURES, "enwiki-sample.xml")
DEWIKI = os.path.join(WIKI_FIXTURES, "dewiki-sample.xml")


def _read(path: str, **settings) -> tuple[list[dict], list[Skip]]:
    docs, skips = [], []
    for item in WikipediaReader(**settings).read(path):
        (skips if isinstance(item, Skip) else docs).append(item)
    return docs, skips


def _dump(lang: str, pages: str, dbname: str | None = None) -> str:
    db = dbname or f"{lang}wiki"
    return (
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="{lang}">\n'
        f"<siteinfo><dbname>{db}</dbname><base>https://{lang}.wikipedia.org/wiki/Main</base></siteinfo>\n"
        f"{pages}</mediawiki>\n"
    )


def _page(pid: int, title: str, text: str, ns: int = 0) -> str:
    from xml.sax.saxutils import escape

    return (
        f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>{pid}</id><revision><id>{pid}0</id>"
        f'<text xml:space="preserve">{escape(text)}</text></revision></page>\n'
    )


def _page_of(doc_id: str) -> str:
    """``<dbname>:<page id>`` of a document id (``<dbname>:<page id>@<folder>/<file>``)."""
    return doc_id.partition("@")[0]


# -- wikitext → text ----------------------------------------------------------------------------------------------
def test_wikitext_removes_templates_refs_tables_files_categories_interwiki():
    wikitext = (
        "{{Infobox person|name=Ada}}\n'''Ada''' was an [[England|English]] [[mathematician]].<ref>{{cite web|url=x}}"
        "</ref><ref name=a/> She wrote [[Note G]].\n[[File:Ada.jpg|thumb|Portrait of [[Ada Lovelace]]]]\n"
        '== Life ==\n{| class="wikitable"\n! Year !! Event\n|-\n| 1815 || Born\n|}\nSee [http://x.org the site] '
        "and [[wikt:engine|engine]].<!-- hidden -->\n__NOTOC__\n[[Category:Mathematicians]]\n[[de:Ada Lovelace]]"
    )
    assert wikitext_to_text(wikitext) == (
        "Ada was an English mathematician. She wrote Note G.\n\nLife\n\nSee the site and engine."
    )


def test_wikitext_localised_file_and_category_prefixes_are_dropped():
    text = "Eine [[Maschine]].\n[[Datei:X.jpg|mini|Bild von [[Y]]]]\n[[Kategorie:Rechner]]"
    assert wikitext_to_text(text, ["Datei", "Kategorie"]) == "Eine Maschine."
    assert "mini" in wikitext_to_text(text)  # without the dump's names they would leak


def test_drop_tables_handles_nesting_and_unclosed_tables():
    assert drop_tables("a\n{|\n| x\n{|\n| inner\n|}\n| y\n|}\nb") == "a\nb"
    assert drop_tables("a\n{| class=x\n| cell\nprose after\n") == "a\nprose after\n"


def test_disambiguation_detection():
    assert is_disambiguation("'''Mercury''' may refer to:\n{{disambiguation}}")
    assert is_disambiguation("{{Disambiguation|geo|surname}}")
    assert is_disambiguation("{{Place name disambiguation}}")
    assert is_disambiguation("{{Begriffsklärung}}")
    assert is_disambiguation("text __DISAMBIG__")
    assert not is_disambiguation("{{Infobox planet}} '''Mercury''' is the smallest planet.")


# -- reader ---------------------------------------------------------------------------------------------------------
def test_reader_selects_articles_and_records_the_rest():
    docs, skips = _read(ENWIKI)
    assert sorted(s.reason for s in skips) == ["skip:namespace_1", "skip:namespace_10", "skip:redirect"]
    by_id = {_page_of(d["id"]): d for d in docs}
    assert {d["id"].partition("@")[2] for d in docs} == {"wikipedia/enwiki-sample.xml"}
    assert set(by_id) == {"enwiki:974", "enwiki:19694", "enwiki:1271", "enwiki:1272"}
    assert by_id["enwiki:19694"]["reason"] == "wiki:disambiguation"
    ada = by_id["enwiki:974"]
    assert "reason" not in ada
    assert ada["url"] == "https://en.wikipedia.org/wiki/Ada_Lovelace" and ada["lang"] == "en"
    assert ada["meta"]["page_id"] == 974 and ada["meta"]["dbname"] == "enwiki"
    assert ada["text"].startswith("Augusta Ada King-Noel, Countess of Lovelace (10 December 1815")
    assert "the Analytical Engine. She was" in ada["text"]
    for junk in ("{{", "<ref", "thumb", "Category", "1833", "de:Ada", "__NOTOC__", "private note"):
        assert junk not in ada["text"]


def test_language_selection_skips_whole_dumps_before_parsing_pages(tmp_path):
    path = tmp_path / "ltgwiki.xml"
    path.write_text(_dump("ltg", _page(1, "Rēzne", "'''Rēzne''' — mīsts Latgolā.")), encoding="utf-8")
    docs, skips = _read(str(path))
    assert docs == [] and [s.reason for s in skips] == ["skip:dump_language_not_selected:ltg"]
    docs, _ = _read(str(path), languages=None)
    assert (
        docs[0]["id"] == f"ltgwiki:1@{tmp_path.name}/ltgwiki.xml"
        and docs[0]["lang"] == "ltg"
        and docs[0]["text"] == "Rēzne — mīsts Latgolā."
    )
    docs, skips = _read(DEWIKI, languages=["en"])
    assert docs == [] and skips[0].reason == "skip:dump_language_not_selected:de"


def test_dump_without_siteinfo_uses_the_root_language(tmp_path):
    path = tmp_path / "export.xml"
    text = _dump("fr", _page(7, "Paris", "'''Paris''' est la [[capitale]] de la France."))
    path.write_text(
        text.replace(text[text.index("<siteinfo>") : text.index("</siteinfo>") + 11], ""), "utf-8"
    )
    docs, _ = _read(str(path))
    assert docs[0]["id"] == f"frwiki:7@{tmp_path.name}/export.xml"
    assert docs[0]["lang"] == "fr" and docs[0]["url"] is None
    assert docs[0]["text"] == "Paris est la capitale de la France."


def test_utf16_bz2_and_gz_dumps_read_like_utf8(tmp_path):
    expected = [(_page_of(d["id"]), d["text"]) for d in _read(ENWIKI)[0]]
    raw = open(ENWIKI, encoding="utf-8").read()
    utf16 = tmp_path / "enwiki-utf16.xml"
    utf16.write_bytes('<?xml version="1.0" encoding="UTF-16"?>\n'.encode("utf-16") + raw.encode("utf-16-le"))
    (tmp_path / "enwiki.xml.bz2").write_bytes(bz2.compress(raw.encode("utf-8")))
    (tmp_path / "enwiki.xml.gz").write_bytes(gzip.compress(raw.encode("utf-8")))
    for name in ("enwiki-utf16.xml", "enwiki.xml.bz2", "enwiki.xml.gz"):
        got = [(_page_of(d["id"]), d["text"]) for d in _read(str(tmp_path / name))[0]]
        assert got == expected, name


# -- hostile dumps --------------------------------------------------------------------------------------------------
def test_entity_declarations_are_refused(tmp_path):
    bomb = '<!DOCTYPE mediawiki [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    xxe = '<!DOCTYPE mediawiki [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    for name, head in (("bomb", bomb), ("xxe", xxe)):
        path = tmp_path / f"{name}.xml"
        path.write_text(head + _dump("en", _page(1, "A", "&b; &x;")), encoding="utf-8")
        with pytest.raises(XmlRefused, match="entity"):
            _read(str(path))


def test_hostile_dumps_are_recorded_and_the_run_goes_on(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    import random

    rnd = random.Random(5)
    words = [
        "engine",
        "river",
        "quartz",
        "meadow",
        "lantern",
        "harbor",
        "violet",
        "summit",
        "copper",
        "falcon",
    ]
    pages = "".join(
        _page(
            i, f"Article {i}", f"Article {i} is about [[topic {i}]]. " + " ".join(rnd.choices(words, k=700))
        )
        for i in range(1, 41)
    )
    good = _dump("en", pages).encode("utf-8")
    (inputs / "good.xml").write_bytes(good)
    # truncated bz2 (100 kB blocks) and gz streams: the pages decompressed before the cut are kept
    packed = bz2.compress(good, compresslevel=1)
    (inputs / "truncated.xml.bz2").write_bytes(packed[: len(packed) * 2 // 3])
    packed = gzip.compress(good)
    (inputs / "truncated.xml.gz").write_bytes(packed[: len(packed) // 2])
    # malformed XML: a page closes the wrong element
    (inputs / "malformed.xml").write_bytes(good.replace(b"</title>", b"</tile>", 1))
    # invalid UTF-8 inside an article
    (inputs / "badenc.xml").write_bytes(good.replace(b"Article 30 is", b"Article \xff\xfe is", 1))
    # a 100 MB single line
    with open(inputs / "huge.xml", "wb") as f:
        f.write(
            _dump("en", "").split("</mediawiki>")[0].encode() + b"<page><title>x</title><ns>0</ns><id>1</id>"
        )
        f.write(b"<revision><text>")
        chunk = b"word " * 209_716
        for _ in range(100):
            f.write(chunk)
        f.write(b"</text></revision></page></mediawiki>")
    result, grown_mb = run_source_peak_mb("wikipedia", str(inputs), str(tmp_path / "out"))
    assert grown_mb < 400, f"peak RSS grew by {grown_mb:.0f} MB"
    stats = {}
    for name in os.listdir(tmp_path / "out" / "wikipedia" / "stats"):
        s = json.load(open(tmp_path / "out" / "wikipedia" / "stats" / name))
        stats[os.path.basename(s["input"])] = s
    for s in stats.values():
        assert s["read"] == s["kept"] + s["rejected"]
    assert stats["good.xml"]["kept"] == 40 and not stats["good.xml"]["errors"]
    for name in ("truncated.xml.bz2", "truncated.xml.gz"):
        assert 0 < stats[name]["kept"] < 40 and "read_error:EOFError" in stats[name]["skipped"], name
    assert stats["malformed.xml"]["errors"] and stats["malformed.xml"]["kept"] == 0
    assert stats["badenc.xml"]["errors"] and 0 < stats["badenc.xml"]["kept"] < 40
    assert stats["huge.xml"]["kept"] == 0 and stats["huge.xml"]["errors"]  # libxml2's 10 MB node limit
    assert len(result.summary["errors"]) == 5


# -- the recipe ----------------------------------------------------------------------------------------------------
def test_recipe_on_fixtures(tmp_path):
    result = run_source("wikipedia", WIKI_FIXTURES, str(tmp_path))
    s = result.summary
    assert (s["read"], s["kept"], s["rejected"]) == (6, 3, 3)
    assert s["rejected_by_reason"] == {"wiki:disambiguation": 2, "wiki:empty": 1}
    docs = pq.read_table(os.path.join(tmp_path, "wikipedia", "docs")).to_pylist()
    assert {_page_of(d["id"]) for d in docs} == {"enwiki:974", "enwiki:1271", "dewiki:4321"}
    de = next(d for d in docs if _page_of(d["id"]) == "dewiki:4321")
    assert de["lang"] == "de" and "mini" not in de["text"] and "Kategorie" not in de["text"]
    assert all(d["word_count"] >= 1 for d in docs)


@pytest.mark.integration
@pytest.mark.parametrize("languages", ["llama", "all"])
def test_real_wikipedia_dumps_run_cleanly(tmp_path, languages):
    corpus = corpus_path("wikipedia")
    overrides = {"reader": {"languages": None}} if languages == "all" else None
    result = run_source("wikipedia", corpus, str(tmp_path), overrides)
    s = result.summary
    assert result.inputs == 3 and not s["errors"]
    assert s["read"] == s["kept"] + s["rejected"]
    assert s["skipped"]["skip:redirect"] >= 99 and s["rejected_by_reason"]["wiki:disambiguation"] >= 7
    docs = pq.read_table(os.path.join(tmp_path, "wikipedia", "docs")).to_pylist()
    langs = {d["lang"] for d in docs}
    if languages == "llama":
        assert langs == {"en"} and s["skipped"]["skip:dump_language_not_selected:ltg"] == 1
    else:
        assert langs == {"en", "ltg"} and s["kept"] > 900
    for d in docs:
        assert not any(junk in d["text"] for junk in ("{{", "<ref", "{|", "[[File:", "thumb|")), d["id"]


def test_the_same_page_in_several_dumps_keeps_unique_ids(tmp_path):
    """Two copies of one dump in two folders and a renamed third copy: every row has its own id, and each
    copy's rows are all there (kept, or rejected by a named step such as the source's duplicate removal)."""
    raw = open(ENWIKI, encoding="utf-8").read()
    for rel in ("a/enwiki-sample.xml", "b/enwiki-sample.xml", "b/enwiki-20240301-pages-articles.xml"):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_text(raw, encoding="utf-8")
    out = tmp_path / "out"
    result = run_source("wikipedia", str(tmp_path / "in"), str(out))
    rows = [
        *pq.read_table(os.path.join(out, "wikipedia", "docs")).to_pylist(),
        *pq.read_table(os.path.join(out, "wikipedia", "rejected")).to_pylist(),
    ]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == result.summary["read"] == 3 * len(_read(ENWIKI)[0])
    dumps = {r["id"].partition("@")[2] for r in rows}
    assert dumps == {"a/enwiki-sample.xml", "b/enwiki-sample.xml", "b/enwiki-20240301-pages-articles.xml"}
    assert {json.loads(r["meta"])["dump"] for r in rows} == dumps
    for page in ("enwiki:974", "enwiki:1271"):
        assert sum(_page_of(i) == page for i in ids) == 3


def test_odd_page_ids_and_namespaces_cost_one_page(tmp_path):
    """A namespace or page id that is not a plain decimal ("²", "1_0", 30 digits) skips or keeps that page with
    its id as written; it never ends the dump."""
    pages = (
        _page(1, "Good", "A '''river''' is a natural stream of water flowing towards the sea.")
        + _page(2, "Odd ns", "Text.").replace("<ns>0</ns>", "<ns>\u00b2</ns>")
        + _page(3, "Underscore ns", "Text.").replace("<ns>0</ns>", "<ns>1_0</ns>")
        + _page(4, "Huge id", "Text of a page.").replace("<id>4</id>", f"<id>{'9' * 30}</id>")
        + _page(5, "Superscript id", "Text of a page.").replace("<id>5</id>", "<id>\u00b2</id>")
    )
    path = tmp_path / "enwiki.xml"
    path.write_text(_dump("en", pages), encoding="utf-8")
    docs, skips = _read(str(path))
    assert [s.reason for s in skips] == ["skip:malformed_page", "skip:malformed_page"]
    by_page = {_page_of(d["id"]): d["meta"]["page_id"] for d in docs}
    assert by_page == {
        "enwiki:1": 1,
        f"enwiki:{'9' * 30}": "9" * 30,
        "enwiki:\u00b2": "\u00b2",
    }  # kept as text


def test_a_page_repeated_inside_one_dump_is_read_once(tmp_path):
    first = _page(12, "River", "A '''river''' is a natural stream of water flowing towards the sea.")
    again = _page(12, "River (copy)", "A second text under the same page id.")
    big = _page(3_000_000_000, "Big id", "Text.") * 2  # above the bitmap: the set path
    path = tmp_path / "enwiki.xml"
    path.write_text(
        _dump("en", first + _page(13, "Lake", "A lake is water.") + again + big), encoding="utf-8"
    )
    docs, skips = _read(str(path))
    assert [(_page_of(d["id"]), d["title"]) for d in docs] == [
        ("enwiki:12", "River"),
        ("enwiki:13", "Lake"),
        ("enwiki:3000000000", "Big id"),
    ]
    assert [s.reason for s in skips] == ["skip:duplicate_page_id"] * 2


def test_seen_ids_bitmap_and_set():
    from pipelines.readers.wikipedia import SeenIds

    seen = SeenIds()
    ids = [0, 7, 8, 80_000_000, 1 << 31, -1, "x9", 7]
    assert [seen.add(i) for i in ids] == [True] * 7 + [False]
    assert all(not seen.add(i) for i in ids) and len(seen._bits) < 12_000_000
