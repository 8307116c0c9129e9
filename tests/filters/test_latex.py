"""Appendices: cut by default as RedPajama v1 does (everything from ``\\appendix`` on), kept with keep_appendix."""

from __future__ import annotations

import pyarrow as pa
import pytest

from filters.latex import CleanLatex, clean_latex
from tests.helpers.sources import make_tar, read_kind, run_source

BODY = (
    "\\documentclass{article}\n\\begin{document}\n\\maketitle\n\\section{Method}\nWe fit a line.\n"
    "\\appendixname{} is only a macro name here.\n"
    "{marker}\n\\section{Proof of the bound}\nThe bound holds because the residuals are small.\n"
    "\\bibliography{refs}\n\\end{document}\n"
)


@pytest.mark.parametrize("marker", ["\\appendix", "\\begin{appendices}", "\\begin{appendix}"])
def test_appendix_is_cut_by_default_and_kept_on_request(marker):
    text = BODY.replace("{marker}", marker)
    cut, reason = clean_latex(text)
    assert reason is None
    assert cut == "\\section{Method}\nWe fit a line.\n\\appendixname{} is only a macro name here.\n"
    kept, _ = clean_latex(text, keep_appendix=True)
    assert marker in kept and "The bound holds" in kept and "refs" not in kept


def test_no_appendix_nothing_cut():
    text = BODY.replace("{marker}\n", "")
    assert clean_latex(text)[0] == clean_latex(text, keep_appendix=True)[0]
    assert "The bound holds" in clean_latex(text)[0]


def test_clean_latex_step_setting():
    batch = pa.table({"text": [BODY.replace("{marker}", "\\appendix")]})
    assert "Proof of the bound" not in CleanLatex()(batch).table.column("text")[0].as_py()
    assert "Proof of the bound" in CleanLatex(keep_appendix=True)(batch).table.column("text")[0].as_py()


def test_keep_appendix_from_the_recipe_config(tmp_path):
    paper = BODY.replace("{marker}", "\\appendix\n\\input{appendix}").replace(
        "\\section{Proof of the bound}\nThe bound holds because the residuals are small.\n", ""
    )
    make_tar(
        str(tmp_path / "2302.00001.tar.gz"),
        {"ms.tex": paper.encode(), "appendix.tex": b"\\section{Extra tables}\nTable text in the appendix.\n"},
    )
    default = run_source("arxiv", str(tmp_path / "2302.00001.tar.gz"), str(tmp_path / "a"))
    keep = run_source(
        "arxiv",
        str(tmp_path / "2302.00001.tar.gz"),
        str(tmp_path / "b"),
        {"steps": {"clean_latex": {"keep_appendix": True}}},
    )
    assert default.summary["kept"] == keep.summary["kept"] == 1
    (cut,) = read_kind(str(tmp_path / "a"), "arxiv", "docs").column("text").to_pylist()
    (full,) = read_kind(str(tmp_path / "b"), "arxiv", "docs").column("text").to_pylist()
    assert "Table text in the appendix." not in cut and "Table text in the appendix." in full
