"""A truncated Parquet file in a finished output: the rerun names it, quarantines it and redoes its input; the query
views and the mixture token pass leave it out with a WARNING instead of failing.  Inputs run largest first."""

from __future__ import annotations

import logging
import os
import shutil

import pyarrow.parquet as pq
import pytest

from pipelines.core.inputs import largest_first
from pipelines.core.layout import input_key, parquet_problem
from pipelines.query import connect
from pipelines.runner import run_recipe
from pipelines.sources.registry import build_recipe, load_config
from tests.helpers.paths import FIXTURES

BOOKS = os.path.join(FIXTURES, "books")


def _recipe():
    no_dedup = {"corpus_stages": {"book_dedup": {"enabled": False}}}
    return build_recipe("books", {**load_config("books"), **no_dedup})


def _rows(out: str, kind: str) -> list[tuple]:
    folder = os.path.join(out, "books", kind)
    rows = [r for n in sorted(os.listdir(folder)) for r in pq.read_table(os.path.join(folder, n)).to_pylist()]
    return sorted((r["id"], r["text"], r.get("reason")) for r in rows)


@pytest.fixture
def finished(tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(BOOKS, inputs)
    out = str(tmp_path / "out")
    run_recipe(_recipe(), str(inputs), out, executor="local", progress=False)
    return str(inputs), out


def _cut(path: str, keep: float = 0.6) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


def test_the_rerun_quarantines_a_truncated_docs_file_and_redoes_its_input(finished, caplog):
    inputs, out = finished
    reference = {kind: _rows(out, kind) for kind in ("docs", "rejected")}
    victim_input = os.path.join(inputs, "pg90001.txt")
    victim = os.path.join(out, "books", "docs", f"{input_key(victim_input)}.parquet")
    _cut(victim)
    assert "truncated" in parquet_problem(victim)
    with caplog.at_level(logging.WARNING):
        result = run_recipe(_recipe(), inputs, out, executor="local", progress=False)
    assert result.processed == 1 and result.already_done == result.inputs - 1
    assert any(victim in r.getMessage() and "quarantine" in r.getMessage() for r in caplog.records)
    quarantined = os.listdir(os.path.join(out, "books", "_quarantine"))
    assert len(quarantined) == 1 and quarantined[0].startswith(f"docs-{input_key(victim_input)}-")
    assert parquet_problem(victim) is None
    assert {kind: _rows(out, kind) for kind in ("docs", "rejected")} == reference


def test_query_views_and_token_pass_skip_a_damaged_file_and_name_it(finished, caplog):
    from mixtures.tokens import TokenCounter, ensure_source_tokens

    inputs, out = finished
    docs_dir = os.path.join(out, "books", "docs")
    victim = os.path.join(docs_dir, f"{input_key(os.path.join(inputs, 'pg90002.txt'))}.parquet")
    victim_rows = pq.read_table(victim).num_rows
    total = sum(pq.read_table(os.path.join(docs_dir, n)).num_rows for n in os.listdir(docs_dir))
    _cut(victim, 0.3)
    with caplog.at_level(logging.WARNING):
        con = connect(out)
        assert con.execute("SELECT count(*) FROM docs").fetchone()[0] == total - victim_rows
        assert con.execute("SELECT count(*) FROM books_rejected").fetchone()[0] > 0
    assert any(victim in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        docs, _, _ = ensure_source_tokens(os.path.join(out, "books"), TokenCounter())
    assert victim not in docs and len(docs) == len(os.listdir(docs_dir)) - 1
    assert any(victim in r.getMessage() for r in caplog.records)


def test_inputs_run_largest_first(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a.txt": 10, "b.txt": 3000, "c.txt": 200, "d.txt": 3000}
    for name, n in sizes.items():
        (folder / name).write_bytes(b"x" * n)
    repo = folder / "repo"
    for depth in range(3):  # a folder input counts the files under it
        repo = repo / f"d{depth}"
        repo.mkdir(parents=True)
        (repo / "f.py").write_bytes(b"y" * 500)
    paths = [str(folder / n) for n in sizes] + [str(folder / "repo")]
    assert [os.path.basename(p) for p in largest_first(paths)] == ["b.txt", "d.txt", "repo", "c.txt", "a.txt"]

    import pipelines.runner as runner

    seen = []
    real = runner.process_input
    monkeypatch.setattr(
        runner,
        "process_input",
        lambda r, p, o, *size: seen.append(os.path.basename(p)) or real(r, p, o, *size),
    )
    shutil.copy(os.path.join(BOOKS, "pg90001.txt"), tmp_path / "small.txt")
    (tmp_path / "big.txt").write_bytes(open(os.path.join(BOOKS, "pg90001.txt"), "rb").read() * 3)
    run_recipe(_recipe(), str(tmp_path / "*.txt"), str(tmp_path / "out"), executor="local", progress=False)
    assert seen == ["big.txt", "small.txt"]
