"""The README's Python API example runs as written (on the books fixtures) and ``import winnow`` exposes the API."""

from __future__ import annotations

import os
import re
import runpy

import pyarrow.parquet as pq

from tests.helpers.paths import REPO


def readme_example() -> str:
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", readme, re.S)
    assert match, "README.md lost its <!-- api-example --> block"
    return match.group(1)


def test_the_readme_example_composes_and_runs_a_recipe(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert '"output"' in code
    monkeypatch.chdir(REPO)  # the example names tests/fixtures/books relative to the clone
    script = tmp_path / "readme_example.py"
    script.write_text(code.replace('"output"', repr(str(tmp_path / "out"))), encoding="utf-8")
    summary = runpy.run_path(str(script), run_name="readme_example")["result"].summary
    # 5 fixture files: one is not a Gutenberg book, one book is a 149-word stub; the other three are kept
    assert summary["read"] == 5 and summary["kept"] == 3
    assert summary["rejected_by_reason"] == {"min_words:too_short": 1, "gutenberg:no_start_marker": 1}
    docs = pq.read_table(str(tmp_path / "out" / "books" / "docs")).to_pylist()
    assert all(len(d["text"].split()) >= 300 and "*** START OF" not in d["text"] for d in docs)
    assert capsys.readouterr().out.startswith("3 {")


def test_import_winnow_exposes_the_api():
    import winnow

    for name in winnow.__all__:
        assert getattr(winnow, name) is not None, name
    recipe = winnow.build_recipe("arxiv", winnow.load_config("arxiv"))
    assert isinstance(recipe, winnow.Recipe) and all(isinstance(s, winnow.Step) for s in recipe.steps)
    assert "books" in winnow.SOURCES
