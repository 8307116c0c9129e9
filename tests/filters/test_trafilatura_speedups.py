"""filters/trafilatura_speedups.py must not change a single extracted character (the bench shows the gain)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

from filters.trafilatura_speedups import compile_python, guard_regex_tests
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

    from filters.trafilatura_speedups import _REGEXP_NS, original

    # trafilatura's own expressions, also when an earlier test in this process installed the speed-ups
    exprs = [original(x) for v in vars(xpaths).values() if isinstance(v, list) for x in v]
    exprs = [x for x in exprs if isinstance(x, XPath)]
    guarded = [x for x in exprs if "re:test(" in x.path]
    compiled = {id(x): compile_python(x) for x in exprs}
    assert len(guarded) >= 10, "trafilatura's XPaths changed: review filters/trafilatura_speedups.py"
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

    from filters.trafilatura_speedups import _REGEXP_NS

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


def test_extraction_is_identical_with_the_speedups_on_every_real_page(tmp_path):
    pages = _pages()
    assert len(pages) > 300
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
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"\ntrafilatura speed-ups on {verdict['pages']} real pages: CPU {verdict['cpu_before']} s -> "
        f"{verdict['cpu_after']} s, {len(verdict['differ'])} pages differ"
    )
    assert verdict["extracted"] > 250
    assert verdict["differ"] == [], f"pages whose text changed: {verdict['differ'][:20]}"
