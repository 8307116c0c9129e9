"""filters/patches/trafilatura_speedups.py must not change a single extracted character (the bench shows the gain),
and every patch skips itself with a WARNING on a library version it was not tested on."""

from __future__ import annotations

import glob
import json
import logging
import os
import pickle
import subprocess
import sys

import pytest

from filters.patches.trafilatura_speedups import compile_python, guard_regex_tests
from tests.helpers.paths import REPO, corpus_path


def test_regex_tests_are_guarded_only_when_an_empty_string_cannot_match():
    path = ".//*[re:test(@class, 'nav|menu') or re:test(@id|@style, 'hidden', 'i') or re:test(@id, 'x?')]"
    out = guard_regex_tests(path)
    assert "((@class) and re:test(@class, 'nav|menu'))" in out
    assert "((@id|@style) and re:test(@id|@style, 'hidden', 'i'))" in out
    # 'x?' matches '' (an element without @id passes the test): left alone
    assert "or re:test(@id, 'x?')]" in out
    # quotes and parentheses inside the pattern do not confuse the rewrite
    tricky = "re:test(@class, '^(?:a|b\\)c)', 'i')"
    assert guard_regex_tests(tricky) == f"((@class) and {tricky})"
    assert guard_regex_tests(".//p[contains(@class, 'x')]") == ".//p[contains(@class, 'x')]"


def test_rewritten_and_python_xpaths_select_the_same_elements_on_real_pages():
    from lxml.etree import XPath
    from trafilatura import xpaths
    from trafilatura.utils import load_html

    from filters.patches.trafilatura_speedups import _REGEXP_NS, original

    # trafilatura's own expressions, also when an earlier test in this process installed the speed-ups
    exprs = [original(x) for v in vars(xpaths).values() if isinstance(v, list) for x in v]
    exprs = [x for x in exprs if isinstance(x, XPath)]
    guarded = [x for x in exprs if "re:test(" in x.path]
    compiled = {id(x): compile_python(x) for x in exprs}
    assert len(guarded) >= 10, "trafilatura's XPaths changed: review filters/patches/trafilatura_speedups.py"
    assert sum(c is not None for c in compiled.values()) >= 8, (
        "trafilatura's XPaths changed: review the compiler"
    )
    pages = _pages()[::3]
    trees = [t for t in (load_html(h) for h in pages) if t is not None]
    contexts = trees + [b for b in (t.find(".//body") for t in trees) if b is not None]
    for x in guarded:
        new = XPath(guard_regex_tests(x.path), namespaces={"re": _REGEXP_NS})
        assert new.path != x.path
        for t in trees:
            assert x(t) == new(t), x.path
    for x in exprs:
        py = compiled[id(x)]
        if py is not None:
            for t in contexts:
                assert x(t) == py(t), x.path


def _select(xpath: str, html: str) -> tuple[list[str], list[str]]:
    """(ids selected by libxml2, ids selected by the compiled Python version) on a small page."""
    from lxml import html as lhtml
    from lxml.etree import XPath

    from filters.patches.trafilatura_speedups import _REGEXP_NS

    tree = lhtml.fromstring(html)
    x = XPath(xpath, namespaces={"re": _REGEXP_NS})
    py = compile_python(x)
    assert py is not None, xpath
    return [e.get("n") for e in x(tree)], [e.get("n") for e in py(tree)]


def test_python_xpaths_follow_xpath_semantics_on_edge_cases():
    page = (
        "<div n='0'><p n='1' class='x' id='cookie'>a</p><p n='2' id='cookie' class='x'>b</p>"
        "<span n='3' role='NAVIGATION'>c</span><span n='4' role=''>d</span><div n='5' data-flag=''>e</div>"
        "<section n='6' style='display: none'>f</section><p n='7'>g</p><ul n='8' class='comment-list'>h</ul>"
        "<div n='9' class='comment-box'>i</div><p n='10' class='a bottom'>j</p></div>"
    )
    cases = [
        # @id|@class as a string: the first of the two in the element's attribute order
        ".//*[self::p][re:test(@id|@class, 'cookie')]",
        ".//*[self::p or self::span][starts-with(@id|@class, 'x')]",
        # translate, then contains; an absent attribute is ''
        ".//*[self::span][contains(translate(@role, 'NAVIG', 'navig'), 'nav')]",
        # existence of an empty attribute; equality never holds for an absent one, even against ''
        ".//*[self::div][@data-flag]",
        ".//*[self::div or self::p][@id='']",
        ".//*[self::p or self::div][contains(@class, '')]",
        ".//*[self::section][contains(@style, 'display:none') or contains(@style, 'display: none')]",
        # a second predicate with not(self::...)
        ".//*[self::div or self::ul][re:test(@class, '^comment')][not(self::ul) or re:test(@class, 'list')]",
        ".//*[self::p][re:test(@id|@class, '(^|\\s)bottom|bottom(\\s|$)')]",
    ]
    for xpath in cases:
        ours, theirs = _select(xpath, page)
        assert ours == theirs, (xpath, ours, theirs)
    assert _select(cases[0], page)[0] == ["2"]
    # outside the grammar: left to libxml2
    from lxml.etree import XPath

    for xpath in (".//*[@class and @id]", ".//p[@class]", ".//*[count(p) > 1]", ".//*[self::p][1]"):
        assert compile_python(XPath(xpath)) is None, xpath


def _pages() -> list[str]:
    """Every real HTML page of the shared corpus (the benchmark's: WARC responses and trafilatura's evaluation pages)."""
    corpus_path("commoncrawl", "warc")  # skips with a clear message when ../shared is absent
    from bench.bench_commoncrawl import real_pages

    return [body.decode("utf-8", errors="replace") for _, body, _ in real_pages()]


def repository_pages() -> list[str]:
    """The HTML pages inside the repository: the responses of the CommonCrawl fixture WARCs and tests/fixtures/html."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "fixtures", "commoncrawl", "*.warc.gz"))):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type == "response" and "html" in (
                    record.http_headers.get_header("Content-Type") or ""
                ):
                    pages.append(record.content_stream().read().decode("utf-8", errors="replace"))
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "fixtures", "html", "*.html"))):
        with open(path, encoding="utf-8") as f:
            pages.append(f.read())
    return pages


def compare_in_fresh_interpreter(pages: list[str], tmp_path) -> dict:
    """Extract ``pages`` without and with the speed-ups (tests/helpers/speedups_check.py); its JSON verdict."""
    src = tmp_path / "pages.pkl"
    src.write_bytes(pickle.dumps(pages))
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "helpers", "speedups_check.py"), str(src)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_extraction_is_identical_with_the_speedups_on_the_repository_pages(tmp_path):
    pages = repository_pages()
    assert len(pages) >= 16
    verdict = compare_in_fresh_interpreter(pages, tmp_path)
    assert verdict["installed"], "the speed-ups did not install: is trafilatura at a tested version?"
    assert verdict["extracted"] >= 12
    assert verdict["differ"] == [], f"pages whose text changed: {verdict['differ']}"


def test_extraction_is_identical_with_the_speedups_on_every_real_page(tmp_path):
    pages = _pages()
    assert len(pages) > 300
    verdict = compare_in_fresh_interpreter(pages, tmp_path)
    print(
        f"\ntrafilatura speed-ups on {verdict['pages']} real pages: CPU {verdict['cpu_before']} s -> "
        f"{verdict['cpu_after']} s, {len(verdict['differ'])} pages differ"
    )
    assert verdict["extracted"] > 250
    assert verdict["differ"] == [], f"pages whose text changed: {verdict['differ'][:20]}"


@pytest.fixture
def untested_versions(monkeypatch):
    """Every patch believes it was tested only on version 0.0.1 (so the installed library is 'untested')."""
    import filters.patches as patches
    from filters.patches import gopher_speedups, trafilatura_speedups, word_tokenizer

    for module in (gopher_speedups, trafilatura_speedups, word_tokenizer):
        monkeypatch.setattr(module, "TESTED_VERSIONS", ("0.0.1",))
    monkeypatch.setattr(gopher_speedups, "_INSTALLED", False)
    monkeypatch.setattr(trafilatura_speedups, "_INSTALLED", False)
    monkeypatch.setattr(word_tokenizer, "_SHARED_TOKENIZERS", {})
    monkeypatch.setattr(patches, "_WARNED", set())


def test_each_patch_skips_itself_with_a_warning_on_an_untested_version(untested_versions, caplog):
    import trafilatura.htmlprocessing as htmlprocessing
    from datatrove.pipeline.filters import gopher_repetition_filter as datatrove_gopher
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from filters.patches import gopher_speedups, trafilatura_speedups, word_tokenizer

    prune, ngrams = htmlprocessing.prune_unwanted_nodes, datatrove_gopher.get_n_grams
    with caplog.at_level(logging.WARNING, logger="filters.patches"):
        assert trafilatura_speedups.install() is False
        assert gopher_speedups.install() is False
        tok = word_tokenizer.shared_word_tokenizer("en")
    assert (
        htmlprocessing.prune_unwanted_nodes is prune and datatrove_gopher.get_n_grams is ngrams
    )  # untouched
    assert type(tok) is type(load_word_tokenizer("en"))  # datatrove's own tokenizer, not the caching wrapper
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any(
        "trafilatura speed-ups" in w and "tested on trafilatura 0.0.1, installed 2." in w for w in warnings
    )
    assert all("unpatched" in w for w in warnings)
