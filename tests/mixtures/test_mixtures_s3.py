"""The mixture build with OUTPUT on a loopback S3 server (moto): the local build's manifest and shard rows, the
commit by the stage manifest written last, a killed build that resumes, and `winnow query` views that follow it."""

from __future__ import annotations

import os

import pytest

from mixtures import store
from mixtures.build import build_stage
from mixtures.spec import EmptyStage, load_mixture
from pipelines.core import storage
from pipelines.core.folder import Folder
from tests.helpers.mixture_data import write_mixture
from tests.helpers.s3 import moto_s3
from tests.mixtures.test_mixtures_distributed import _copy, _mixture, curated  # noqa: F401 - fixture

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")

BUCKET = "winnow-mix"


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as client:
        yield client


def _upload(local: str, uri: str) -> str:
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            storage.upload_file(path, storage.join(uri, os.path.relpath(path, local)))
    return uri


def _rows(output: str, manifest: dict) -> list[dict]:
    """The shard rows in the order the manifest names the shards."""
    stage = storage.join(output, "mixtures", manifest["stage"])
    return [
        r for sh in manifest["shards"] for r in store.read_table(storage.join(stage, sh["file"])).to_pylist()
    ]


def _comparable(manifest: dict) -> dict:
    """The manifest minus where it ran, the listing stamps (mtimes differ between copies) and shard folders."""
    m = {k: v for k, v in manifest.items() if k not in ("execution", "inputs")}
    m["shards"] = [{**sh, "file": os.path.basename(sh["file"])} for sh in manifest["shards"]]
    m["docs_files"] = sorted(manifest["inputs"]["docs"])
    m["docs_bytes"] = sorted(v["bytes"] for v in manifest["inputs"]["docs"].values())
    return m


class FailingPartition:
    """``write_partition`` that writes partition 0, then fails as a node lost mid-build would."""

    def __init__(self, real):
        self.real = real

    def __call__(self, job):
        if job.partition > 0:
            raise OSError("node lost")
        return self.real(job)


def test_s3_build_equals_the_local_build_and_a_killed_one_resumes(s3, curated, tmp_path, monkeypatch):  # noqa: F811
    import mixtures.build as build_module
    import mixtures.tasks as tasks_module

    mix = _mixture(str(tmp_path))
    local_out = _copy(curated, str(tmp_path / "local"))
    local = build_stage(load_mixture(path=mix), local_out, executor="local")
    out = _upload(_copy(curated, str(tmp_path / "up")), f"s3://{BUCKET}/out")

    # killed in the shard pass: partition 0 was written, nothing is committed, no reader sees the stage
    monkeypatch.setattr(build_module, "write_partition", FailingPartition(tasks_module.write_partition))
    with pytest.raises(Exception, match="node lost"):
        build_stage(load_mixture(path=mix), out, executor="local")
    stage = Folder(storage.join(out, "mixtures", "dist"))
    assert not stage.exists("manifest.json")
    (run,) = stage.child("runs").folders()
    run_dir = stage.child("runs", run)
    done = [o.path for o in run_dir.list("_shuffle/done/*.json")]
    assert len(done) == 1 and done[0].endswith("p-00000.json")
    first = {o.path: o.mtime_ns for o in run_dir.list("shards/*.parquet")}
    assert first and all("shard-00000-" in p for p in first)
    # sidecars were written beside the docs on S3
    assert Folder(out).list("*/tokens/*.parquet") and Folder(out).list("*/decontam/*.parquet")

    # the rerun finds its run folder, keeps partition 0's shards and commits with the stage manifest
    monkeypatch.undo()
    written: list[int] = []
    real = tasks_module.ShardWriter.flush

    def counting(self):
        written.append(1 if self._batches else 0)
        return real(self)

    monkeypatch.setattr(tasks_module.ShardWriter, "flush", counting)
    remote = build_stage(load_mixture(path=mix), out, executor="local")
    assert remote["execution"]["run"] == run
    assert {o.path: o.mtime_ns for o in run_dir.list("shards/*.parquet") if o.path in first} == first
    assert sum(written) == len(remote["shards"]) - len(first)  # only the missing partitions were written
    assert stage.read_json("manifest.json") == remote
    assert all(sh["file"].startswith(f"runs/{run}/shards/") for sh in remote["shards"])
    assert not run_dir.list("_shuffle/p-*/*")  # the work pieces are gone after the commit
    # a rerun of the committed run rewrites no shard and commits the same manifest
    written.clear()
    shards = {o.path: o.mtime_ns for o in run_dir.list("shards/*.parquet")}
    again = build_stage(load_mixture(path=mix), out, executor="local")
    assert sum(written) == 0 and {o.path: o.mtime_ns for o in run_dir.list("shards/*.parquet")} == shards
    assert {k: v for k, v in again.items() if k != "execution"} == {
        k: v for k, v in remote.items() if k != "execution"
    }

    # the same mixture as on local disk: manifest (minus paths and timings) and shard rows in order
    assert _comparable(remote) == _comparable(local)
    assert _rows(out, remote) == _rows(local_out, local)
    assert remote["decontamination"]["removed"] == 1


def test_query_views_follow_the_stage_manifest_and_a_new_build_replaces_the_old_run(s3, curated, tmp_path):  # noqa: F811
    from pipelines.query import connect

    out = _upload(_copy(curated, str(tmp_path / "up")), f"s3://{BUCKET}/views")
    first = build_stage(load_mixture(path=_mixture(str(tmp_path))), out, executor="local")
    other = str(tmp_path / "other")
    os.makedirs(other)
    second = build_stage(load_mixture(path=_mixture(other, seed=9)), out, executor="local")
    stage = Folder(storage.join(out, "mixtures", "dist"))
    assert first["execution"]["run"] != second["execution"]["run"]
    assert stage.child("runs").folders() == [second["execution"]["run"]]  # the old run left after the commit
    con = connect(out)
    n, stages = con.execute("SELECT count(*), list(DISTINCT stage) FROM mixture_docs").fetchone()
    assert n == second["documents"] and stages == ["dist"]
    realised = dict(con.execute("SELECT source, realised_tokens FROM mixture_sources").fetchall())
    assert realised == {s["name"]: s["realised_tokens"] for s in second["sources"]}
    assert con.execute("SELECT count(*) FROM decontamination").fetchone()[0] == 1
    assert con.execute("SELECT count(DISTINCT source) FROM token_counts").fetchone()[0] == 3
    # a stage that now selects nothing: its manifest and runs go, and the views no longer show it
    empty = write_mixture(
        str(tmp_path / "empty.yaml"), {"books": {"share": 1.0, "where": "false"}}, stage="dist"
    )
    with pytest.raises(EmptyStage):
        build_stage(load_mixture(path=empty), out, executor="local")
    assert not stage.exists("manifest.json") and not stage.list()
    assert "mixture_docs" not in {r[0] for r in connect(out).execute("SHOW TABLES").fetchall()}
