"""The MinHash stage in place on object storage (a moto S3 server on loopback): no local copy of the source, the
work folder and the incremental index in the bucket's ``_dedup/``, and the same bytes as a local run."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from dedup.stages import ExactDedupStage, MinHashDedupStage
from pipelines.core import stage_copy, storage
from pipelines.core.corpus_stage import run_stage
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from tests.dedup import test_incremental
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


def test_minhash_and_exact_run_in_place_on_s3_as_locally(s3, docs, tmp_path, monkeypatch):
    def no_copy(*a, **k):
        raise AssertionError("the stage ran on a local copy")

    monkeypatch.setattr(stage_copy, "run_on_copy", no_copy)
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
