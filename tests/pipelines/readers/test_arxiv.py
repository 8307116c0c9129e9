"""arXiv sources: inlining is bounded in count and size, every paper of an input is found, damaged names stay
printable.  All inputs are generated and tiny (the fan-out bomb is a 12-level tree of 13 small files)."""

from __future__ import annotations

import gzip
import os

import pytest

from pipelines.core.recipe import Skip
from pipelines.readers.arxiv import ArxivReader, InlineLimitError, main_candidates, resolve_inputs
from tests.helpers.sources import all_stats, assert_accounting, make_tar, read_kind, run_source
from tests.helpers.trees import fan_out

PAPER = (
    b"\\documentclass{article}\n\\begin{document}\n\\section{Introduction}\nWe study small things.\n"
    b"\\input{body}\n\\end{document}\n"
)


def test_fan_out_stops_at_the_inline_cap():
    files = {k: v.decode() for k, v in fan_out().items()}
    with pytest.raises(InlineLimitError, match="more than 500 files"):
        resolve_inputs("main.tex", files)
    with pytest.raises(InlineLimitError, match="characters"):  # the size cap alone stops it too
        resolve_inputs("main.tex", files, max_inlines=10**9, max_inlined_bytes=200_000)
    # the same tree three levels deep is an ordinary paper: 4 + 16 + 64 inlines
    small = {k: v.decode() for k, v in fan_out(levels=3).items()}
    text, resolved, missing = resolve_inputs("main.tex", small)
    assert len(resolved) == 84 and not missing and text.count("The leaves of the tree.") == 64


def test_inline_bombs_are_rejected_and_the_run_goes_on(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_tar(str(src / "2301.00001.tar.gz"), fan_out())
    body = (b"A long and honest section of text about measurements. " * 20 + b"\n") * 280  # ~300 kB
    make_tar(
        str(src / "2301.00002.tar.gz"),
        {"main.tex": PAPER.replace(b"\\input{body}", b"\\input{body}\n" * 4), "body.tex": body},
    )
    make_tar(str(src / "2301.00003.tar.gz"), {"main.tex": PAPER, "body.tex": b"Ordinary body text.\n"})
    assert sum(os.path.getsize(p) for p in src.iterdir()) < 20_000  # the bombs stay small on disk
    out = str(tmp_path / "out")
    res = run_source("arxiv", str(src), out)
    assert res.summary["inputs"] == 3 and not res.summary.get("errors")
    assert_accounting(out, "arxiv")
    rej = {r["id"]: r for r in read_kind(out, "arxiv", "rejected").to_pylist()}
    assert rej["arxiv:2301.00001"]["reason"] == "arxiv:inline_limit"
    assert "more than 500 files" in rej["arxiv:2301.00001"]["meta"]
    assert rej["arxiv:2301.00002"]["reason"] == "arxiv:inline_limit"  # 4 x 300 kB > 1,000,000 characters
    docs = read_kind(out, "arxiv", "docs").to_pylist()
    assert [d["id"] for d in docs] == ["arxiv:2301.00003"] and "Ordinary body text." in docs[0]["text"]
    # the limits are settings: raised, the 1.2 MB paper is a document
    again = run_source(
        "arxiv",
        str(src / "2301.00002.tar.gz"),
        str(tmp_path / "o2"),
        {"reader": {"max_inlined_bytes": 2_000_000}},
    )
    assert again.summary["kept"] == 1


def test_every_paper_in_a_folder_is_found(tmp_path):
    pair = tmp_path / "papers" / "pair"
    (pair / "sub").mkdir(parents=True)
    (pair / "a.tex").write_bytes(
        b"\\documentclass{article}\n\\begin{document}\n\\section{First paper}\n"
        + b"The first paper, which is the longest one here by some margin. " * 20
        + b"\n\\input{shared}\n\\input{fig}\n\\end{document}\n"
    )
    (pair / "b.tex").write_bytes(
        b"\\documentclass{article}\n\\begin{document}\n\\section{Second paper}\nA short second paper.\n"
        b"\\end{document}\n"
    )
    (pair / "shared.tex").write_bytes(b"Shared definitions and text.\n")
    (pair / "fig.tex").write_bytes(  # a standalone figure that a.tex pulls in: not a paper of its own
        b"\\documentclass{standalone}\n\\begin{document}\nA drawing.\n\\end{document}\n"
    )
    (pair / "sub" / "c.tex").write_bytes(
        b"\\documentclass{article}\n\\begin{document}\n\\section{Third paper}\n\\input{part}\n\\end{document}\n"
    )
    (pair / "sub" / "part.tex").write_bytes(b"Third paper body, resolved next to its own main file.\n")
    items = list(ArxivReader().read(str(pair)))
    rows = {r["id"]: r for r in items if isinstance(r, dict)}
    assert sorted(rows) == ["arxiv:pair", "arxiv:pair/b.tex", "arxiv:pair/sub/c.tex"]
    assert rows["arxiv:pair"]["meta"]["main_file"] == "a.tex"
    assert rows["arxiv:pair"]["meta"]["inputs"] == ["shared.tex", "fig.tex"]
    assert "Third paper body" in rows["arxiv:pair/sub/c.tex"]["text"]
    assert [s.reason for s in items if isinstance(s, Skip)] == ["arxiv:main_file_inlined"]
    # through the recipe: three inputs' worth of papers from one input, each counted
    out = str(tmp_path / "out")
    run_source("arxiv", str(tmp_path / "papers"), out)
    assert_accounting(out, "arxiv")
    (stats,) = all_stats(out, "arxiv")
    assert stats["read"] == 3 and stats["skipped"] == {"arxiv:main_file_inlined": 1}
    # the folder itself as INPUT: one input (it has parts), not a.tex and b.tex read alone without shared.tex
    assert ArxivReader().discover(str(pair)) == [str(pair)]
    assert ArxivReader().discover(str(tmp_path / "papers")) == [str(pair)]
    lone = tmp_path / "lone"  # a folder of lone papers stays a folder of inputs
    lone.mkdir()
    for n in ("x", "y"):
        (lone / f"{n}.tex").write_bytes(PAPER.replace(b"\\input{body}", b"Alone."))
    assert ArxivReader().discover(str(lone)) == [str(lone / "x.tex"), str(lone / "y.tex")]


def test_main_candidates_fall_back_to_documentclass_alone():
    files = {
        "a.tex": "\\documentclass{article}\nno begin",
        "b.tex": "\\documentclass{article}\nlonger, no begin",
    }
    assert main_candidates(files) == ["b.tex"]
    assert main_candidates({"x.tex": "% \\documentclass{article}\n\\begin{document}"}) == []


def test_non_utf8_names_in_a_paper(tmp_path):
    make_tar(
        str(tmp_path / "2301.00009.tar.gz"),
        {
            os.fsdecode(b"r\xe9sum\xe9.tex"): PAPER.replace(b"\\input{body}", b"Text."),
            os.fsdecode(b"d\xff/extra.tex"): b"Unused.\n",
        },
    )
    (row,) = [r for r in ArxivReader().read(str(tmp_path / "2301.00009.tar.gz")) if isinstance(r, dict)]
    assert row["meta"]["main_file"] == "r\\xe9sum\\xe9.tex" and "Text." in row["text"]


def test_a_cut_gzipped_single_paper_is_a_rejected_row(tmp_path):
    blob = gzip.compress(PAPER.replace(b"\\input{body}", b"Words. " * 2000))
    (tmp_path / "2301.00010.gz").write_bytes(blob[: len(blob) // 2])
    out = str(tmp_path / "out")
    res = run_source("arxiv", str(tmp_path / "2301.00010.gz"), out)
    assert not res.summary.get("errors")
    (row,) = read_kind(out, "arxiv", "rejected").to_pylist()
    assert (row["id"], row["reason"]) == ("arxiv:2301.00010", "read_error:truncated_archive")
