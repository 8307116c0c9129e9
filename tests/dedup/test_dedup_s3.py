"""Corpus stages in place on object storage (a moto S3 server on loopback): no local copy of the source, the work
folder (and the MinHash incremental index) in the bucket's ``_dedup/``, and the same output as a local run: MinHash
and exact dedup byte for byte, line dedup row for row (also after a kill), semantic dedup row for row."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from dedup.corpus import read_table
from dedup.line_stage import LineDedupStage
from dedup.stages import ExactDedupStage, MinHashDedupStage
from pipelines.core import storage
from pipelines.core.corpus_stage import run_stage
from pipelines.core.folder import Folder
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from tests.dedup import test_incremental
from tests.dedup.test_dedup_line_stage import make_source, rewrite_killed_at
from tests.helpers.s3 import moto_s3

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")

BUCKET = "winnow-dedup"
SRC = f"s3://{BUCKET}/out/cc"
SETTINGS = {"executor": "local", "partitions": 4, "tasks": 2}
#: the incremental tests' documents (a fixture): 500 Wikipedia-paragraph docs, 30% planted near-duplicates
docs = test_incremental.docs


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as client:
        yield client


@pytest.fixture
def no_local_copy(monkeypatch):
    """Any download of an object to local disk (a working copy of the source) fails the test."""

    def no_copy(*a, **k):
        raise AssertionError("the stage copied the source to local disk")

    monkeypatch.setattr(storage, "download_file", no_copy)
    monkeypatch.setattr(storage, "local_copy", no_copy)


def _upload(local: str, uri: str) -> None:
    """Every file of the local folder ``local`` to the same names under ``uri``."""
    for dirpath, _, names in os.walk(local):
        for name in names:
            path = os.path.join(dirpath, name)
            storage.upload_file(path, storage.join(uri, os.path.relpath(path, local).replace(os.sep, "/")))


def _rows(root: str, kind: str) -> dict[str, list[str]]:
    """``file name -> digest of each row, in order`` of every Parquet file of ``<root>/<kind>/``."""
    out = {}
    for o in Folder(storage.join(root, kind)).list(suffix=".parquet", recursive=False):
        rows = read_table(o.path).to_pylist()
        out[storage.basename(o.path)] = [
            hashlib.sha1(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest() for r in rows
        ]
    return out


def _same_rows(local: str, remote: str) -> None:
    """docs and rejected row for row, and the recounted stats, equal in the bucket and locally."""
    for kind in ("docs", "rejected"):
        assert _rows(local, kind) == _rows(remote, kind), kind
    stats = {
        storage.basename(o.path): Folder(local).read_json(f"stats/{storage.basename(o.path)}")
        for o in Folder(storage.join(local, "stats")).list()
    }
    assert stats == {n: Folder(remote).read_json(f"stats/{n}") for n in stats}


def _write(local: str, docs: dict[str, list], lo: int, hi: int, parts: int, prefix: str) -> None:
    """Docs files ``<prefix><i>.parquet`` locally and the same bytes in the bucket."""
    os.makedirs(os.path.join(local, "docs"), exist_ok=True)
    for i, b in enumerate(np.array_split(np.arange(lo, hi), parts)):
        rows = [{"id": docs["id"][j], "source": "cc", "text": docs["text"][j]} for j in b.tolist()]
        path = os.path.join(local, "docs", f"{prefix}{i}.parquet")
        pq.write_table(table_from_rows(rows, CORE_SCHEMA), path)
        storage.upload_file(path, f"{SRC}/docs/{prefix}{i}.parquet")


def _files(root: str, kind: str) -> dict[str, bytes]:
    """``name -> bytes`` of every file of ``<root>/<kind>/`` (local or in the bucket)."""
    if storage.is_uri(root):
        return {
            storage.basename(o.path): storage.read_bytes(o.path) for o in storage.list_files(f"{root}/{kind}")
        }
    folder = os.path.join(root, kind)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {n: open(os.path.join(folder, n), "rb").read() for n in names if not n.startswith(".")}


def _clusters(root: str, name: str) -> list[dict]:
    fs, path = storage.resolve(storage.join(root, "duplicates", f"{name}.parquet"))
    rows = pq.read_table(path, filesystem=fs).to_pylist()
    return [{**r, "input": storage.basename(r["input"])} for r in rows]


def _same(local: str, name: str) -> None:
    for kind in ("docs", "rejected"):
        assert _files(local, kind) == _files(SRC, kind), kind  # byte for byte
    assert _clusters(local, name) == _clusters(SRC, name)  # inputs named by their own location


def test_minhash_and_exact_run_in_place_on_s3_as_locally(s3, docs, tmp_path, no_local_copy):
    local = str(tmp_path / "cc")
    _write(local, docs, 0, 200, 3, "a")
    stage = MinHashDedupStage(settings=dict(SETTINGS))
    first_local, first = run_stage(stage, local), run_stage(stage, SRC)
    assert first["removed"] > 10 and first["index_generations"] == 1
    assert {k: v for k, v in first.items() if "seconds" not in k} == {
        k: v for k, v in first_local.items() if "seconds" not in k
    }
    _same(local, "minhash")
    names = [o.path for o in storage.list_files(f"{SRC}/_dedup")]
    assert f"{SRC}/_dedup/minhash-index/state.json" in names  # the index lives in the bucket
    assert any("/_dedup/minhash-" in n and "/_done/" in n for n in names)  # and the work folder

    # new docs files: the incremental run reads the index from the bucket and matches the local one
    _write(local, docs, 200, 300, 2, "b")
    second_local, second = run_stage(stage, local), run_stage(stage, SRC)
    assert second["incremental"] and second["new_files"] == 2 and second["index_generations"] == 2
    assert second["removed"] == second_local["removed"] > 0
    _same(local, "minhash")
    assert run_stage(stage, SRC)["up_to_date"] is True

    exact = ExactDedupStage(mode="normalized", settings={"executor": "local", "partitions": 4})
    assert run_stage(exact, local)["removed"] == run_stage(exact, SRC)["removed"]
    _same(local, "exact")


LINES = {"bucket_docs": 60, "partitions": 3}  # 162 pages in 3 buckets, 4 inputs


def _pages(tmp_path, name: str) -> tuple[str, str]:
    """The line-dedup test pages (4 inputs of a written source) locally and, the same bytes, in the bucket."""
    local, remote = str(tmp_path / "cc"), f"s3://{BUCKET}/out/{name}"
    make_source(local)
    _upload(local, remote)
    return local, remote


def test_line_dedup_runs_in_place_on_s3_as_locally(s3, tmp_path, no_local_copy):
    local, remote = _pages(tmp_path, "lines")
    stage = LineDedupStage(settings=dict(LINES))
    stats_local, stats = run_stage(stage, local), run_stage(stage, remote)
    assert stats == stats_local and stats["lines_removed"] > 100 and stats["emptied"] > 0
    _same_rows(local, remote)
    work = [o.path for o in storage.list_files(f"{remote}/_dedup") if "/line_dedup-" in o.path]
    assert any("/_done/line_rewrite/" in p for p in work) and any("/counts-" in p for p in work)
    assert not any("/hashes/" in p for p in work)  # the intermediate partitions are gone, as locally
    assert run_stage(stage, remote)["up_to_date"] is True


def test_line_dedup_killed_on_s3_resumes_to_the_local_output(s3, tmp_path, monkeypatch, no_local_copy):
    whole, killed = _pages(tmp_path, "lines-killed")
    run_stage(LineDedupStage(settings=dict(LINES)), whole)
    with rewrite_killed_at(monkeypatch, 3):  # two docs files in the bucket are already rewritten
        run_stage(LineDedupStage(settings=dict(LINES)), killed)
    assert storage.exists(f"{killed}/_dedup/line_dedup.running.json")
    stats = run_stage(LineDedupStage(settings=dict(LINES)), killed)  # with the counts of the original text
    assert "up_to_date" not in stats
    _same_rows(whole, killed)


def test_line_counts_in_the_bucket_drive_the_counts_step_as_locally(s3, tmp_path, no_local_copy):
    """``winnow dedup lines --counts s3://...`` and the ``mode: counts`` step that reads them."""
    from dedup.corpus import build_inputs
    from dedup.line_stage import LineDedupConfig, count_lines
    from dedup.lines import LineDedup

    local, remote = _pages(tmp_path, "lines-counts")
    cfg = LineDedupConfig(**LINES)
    meta = count_lines(build_inputs([f"{local}/docs"]), str(tmp_path / "counts"), cfg, hits=False)
    assert count_lines(build_inputs([f"{remote}/docs"]), f"{remote}/counts", cfg, hits=False) == meta
    batch = read_table(f"{local}/docs/input00.parquet")
    texts = [
        LineDedup(max_count=6, mode="counts", counts_dir=where)(batch).table.column("text").to_pylist()
        for where in (str(tmp_path / "counts"), f"{remote}/counts")
    ]
    assert texts[0] == texts[1] and texts[0] != batch.column("text").to_pylist()


def test_semantic_dedup_runs_in_place_on_s3_as_locally(s3, tmp_path, no_local_copy):
    from dedup.stages import SemanticDedupStage
    from tests.dedup.test_semantic import THRESHOLD, _source

    local, remote = str(tmp_path / "cc"), f"s3://{BUCKET}/out/semantic"
    _source(
        local,
        [
            ["lighthouse", "bakery", "trains", "garden"],
            ["lighthouse_reworded", "bakery_reworded", "lighthouse_other", "chess"],
        ],
    )
    _upload(local, remote)
    settings = {"threshold": THRESHOLD, "clusters": 2, "assign_to": 2, "executor": "local", "tasks": 2}
    stage = SemanticDedupStage(settings=settings)
    stats_local, stats = run_stage(stage, local), run_stage(stage, remote)
    assert stats["removed"] == stats_local["removed"] == 2 and stats["pairs_recorded"] > 0
    assert {k: v for k, v in stats.items() if "seconds" not in k and k != "executor"} == {
        k: v for k, v in stats_local.items() if "seconds" not in k and k != "executor"
    }
    for kind in ("docs", "rejected"):
        assert _rows(local, kind) == _rows(remote, kind), kind
    assert _clusters(local, "semantic_dedup") == _clusters(remote, "semantic_dedup")
    pairs = "semantic_dedup.pairs.parquet"  # no paths in it: equal as written
    assert _rows(local, "duplicates")[pairs] == _rows(remote, "duplicates")[pairs]
    work = [o.path for o in storage.list_files(f"{remote}/_dedup")]
    assert any("/_dedup/semantic-" in p and p.endswith("centroids.npy") for p in work)
    assert any("/_dedup/semantic-" in p and "/emb/" in p for p in work)  # the sidecars in the bucket
    assert run_stage(stage, remote)["up_to_date"] is True


def test_line_dedup_ray_tasks_read_and_write_the_bucket_themselves(s3, tmp_path, ray_local, no_local_copy):
    """Ray tasks get the object-store settings the executor forwards, and give the local result."""
    local, remote = _pages(tmp_path, "lines-ray")
    run_stage(LineDedupStage(settings=dict(LINES)), local)
    stats = run_stage(LineDedupStage(settings={**LINES, "executor": "ray", "workers": 2}), remote)
    assert stats["lines_removed"] > 100
    _same_rows(local, remote)
