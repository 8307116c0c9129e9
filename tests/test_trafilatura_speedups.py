"""filters/trafilatura_speedups.py must not change a single extracted character (the bench shows the gain)."""

from __future__ import annotations

import glob
import gzip
import json
import os
import pickle
import subprocess
import sys

from conftest import REPO, corpus_path

from filters.trafilatura_speedups import guard_regex_tests


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


def test_rewritten_xpaths_select_the_same_elements_on_real_pages():
    from lxml.etree import XPath
    from trafilatura import xpaths
    from trafilatura.utils import load_html

    from filters.trafilatura_speedups import _REGEXP_NS

    exprs = [
        x
        for v in vars(xpaths).values()
        if isinstance(v, list)
        for x in v
        if isinstance(x, XPath) and "re:test(" in x.path
    ]
    assert len(exprs) >= 10, "trafilatura's XPaths changed: review filters/trafilatura_speedups.py"
    pages = _pages()[::4]
    trees = [t for t in (load_html(h) for h in pages) if t is not None]
    for x in exprs:
        new = XPath(guard_regex_tests(x.path), namespaces={"re": _REGEXP_NS})
        assert new.path != x.path
        for t in trees:
            assert x(t) == new(t), x.path


def _pages() -> list[str]:
    """Every real HTML page of the shared corpus (response bodies of the WARCs, trafilatura's evaluation pages)."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for path in sorted(
        glob.glob(os.path.join(corpus_path("commoncrawl", "warc"), "**", "*.warc.gz"), recursive=True)
    ):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f):
                if (
                    r.rec_type == "response"
                    and r.http_headers is not None
                    and "html" in (r.http_headers.get_header("Content-Type") or "")
                ):
                    body = r.content_stream().read()
                    if body:
                        pages.append(body)
    for p in sorted(glob.glob(os.path.join(corpus_path("commoncrawl", "html"), "*", "cache", "*"))):
        raw = open(p, "rb").read()
        pages.append(gzip.decompress(raw) if p.endswith(".gz") else raw)
    return [b.decode("utf-8", errors="replace") for b in pages]


def test_extraction_is_identical_with_the_speedups_on_every_real_page(tmp_path):
    pages = _pages()
    assert len(pages) > 300
    src = tmp_path / "pages.pkl"
    src.write_bytes(pickle.dumps(pages))
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "_speedups_check.py"), str(src)],
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
