"""CommonCrawl on a three-node Ray cluster (``ray.cluster_utils.Cluster``) with OUTPUT and every work folder on a
loopback S3 server (moto): no node shares a folder with another through Winnow (the nodes happen to be one
machine, but every pass reads and writes the bucket).

* The cluster run (per-input tasks, then the dedup stages with ``executor: ray``) gives the local run's docs and
  rejected rows, and the tasks of every corpus pass of two or more tasks ran on both worker nodes.
* The mixture build, as Ray tasks over that output in the bucket, gives the local build's shard rows.
* A worker node removed while the MinHash bucket pass runs (its tasks are held until the node is gone, so the
  removal always falls mid-pass): Ray reruns the lost tasks on the other node and the output is still the local one.
* A task whose store read fails once (``StorageError``) is retried by Ray.
* ``winnow cron`` on the cluster over the bucket (the README's cron job): the local run's rows, then nothing to do.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import tempfile
import threading
import time

import pyarrow.parquet as pq
import pytest

import dedup.stages
from pipelines.core import storage
from pipelines.core.executor import RayExecutor
from pipelines.runner import run_recipe
from tests.helpers.paths import FIXTURES, REPO
from tests.helpers.s3 import moto_s3
from tests.pipelines.sources.test_commoncrawl import _good_page, _warc_bytes, recipe

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BUCKET = "winnow-cluster"
IN = f"s3://{BUCKET}/in/cc"
CC = os.path.join(FIXTURES, "commoncrawl")
FAST = {"partitions": 4, "tasks": 2}
#: the passes of the exact stages (unique ids, URL dedup) and of MinHash, as the executor names them
STAGES = ("unique_ids", "url_dedup", "minhash")


def overrides(executor: str) -> dict:
    return {"corpus_stages": {s: {"executor": executor, **FAST} for s in STAGES}}


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as client:
        yield client


@pytest.fixture(scope="module")
def inputs(s3, tmp_path_factory) -> str:
    """The fixture WARCs plus a copy of a kept page (MinHash removes it), locally and in the bucket."""
    local = tmp_path_factory.mktemp("cc-in")
    for p in glob.glob(os.path.join(CC, "*.warc.gz")):
        shutil.copy(p, local / os.path.basename(p))
    (local / "copies.warc.gz").write_bytes(_warc_bytes([("copy-of-rivers", _good_page(0))]))
    for p in sorted(glob.glob(str(local / "*.warc.gz"))):
        storage.upload_file(p, f"{IN}/{os.path.basename(p)}")
    return str(local)


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("cc-local"))
    run_recipe(recipe(**overrides("local")), inputs, out, executor="local", progress=False)
    return out


@pytest.fixture(scope="module")
def cluster(s3):
    """A head with no CPU for tasks and two 1-CPU workers on loopback; this process is the driver.  The workers
    inherit this environment (the repository on PYTHONPATH, so they import Winnow and this module)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session's embedded Ray (tests/conftest.py)
        ray.shutdown()
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    mp.delenv("RAY_ADDRESS", raising=False)
    temp = tempfile.mkdtemp(prefix="w3n-", dir="/tmp")  # short: Unix socket paths are limited to 107 bytes
    node = {"object_store_memory": 100_000_000}
    c = Cluster(
        initialize_head=True,
        head_node_args={**node, "num_cpus": 0, "include_dashboard": False, "temp_dir": temp},
    )
    try:
        for _ in range(2):
            c.add_node(**node, num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        mp.undo()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def stage_executor(monkeypatch):
    """One RayExecutor for every corpus stage of the run, so the test reads where each pass's tasks ran."""
    ex = RayExecutor(progress=False)
    monkeypatch.setattr(dedup.stages, "get_executor", lambda *a, **k: ex)
    return ex


def rows(root: str, kind: str) -> list[dict]:
    """Every row of ``<root>/commoncrawl/<kind>/`` (local or s3), sorted by id."""
    if storage.is_uri(root):
        uris = [o.path for o in storage.list_files(f"{root}/commoncrawl/{kind}")]
        tables = [pq.read_table(storage.resolve(u)[1], filesystem=storage.resolve(u)[0]) for u in uris]
    else:
        tables = [pq.read_table(p) for p in glob.glob(os.path.join(root, "commoncrawl", kind, "*.parquet"))]
    return sorted((r for t in tables for r in t.to_pylist()), key=lambda r: r["id"])


def assert_same_output(out: str, local_out: str) -> None:
    assert rows(out, "docs") == rows(local_out, "docs")  # every column, scores included
    assert rows(out, "rejected") == rows(local_out, "rejected")
    assert "urn:bad:copy-of-rivers" in {
        r["id"] for r in rows(out, "rejected") if r["reason"] == "dedup:minhash"
    }


def test_cluster_run_on_s3_spreads_every_pass_and_matches_the_local_run(
    cluster, inputs, local_run, stage_executor, tmp_path
):
    out = f"s3://{BUCKET}/out"
    run_recipe(recipe(**overrides("ray")), IN, out, executor="ray", progress=False)
    assert_same_output(out, local_run)
    workers = {n.node_id for n in cluster.worker_nodes}
    inputs_on = {storage.read_json(o.path)["node"] for o in storage.list_files(f"{out}/commoncrawl/stats")}
    assert inputs_on == workers  # 4 per-input tasks over both workers
    # every pass of two or more tasks ran on both workers (the first task of a pass goes to each node, the rest
    # SPREAD), the passes of 2-3 tasks (signatures over 3 docs files) included
    passes = {d: n for d, n in stage_executor.nodes.items() if d}  # "": the one-task publishing of clusters
    assert {"dedup: minhash signatures", "dedup: buckets", "dedup: removal", "dedup: components"} <= set(
        passes
    )
    assert all(set(n) <= workers for n in passes.values())
    assert any(len(n) in (2, 3) for n in passes.values())  # small passes are among them
    narrow = {d: len(n) for d, n in passes.items() if len(n) >= 2 and set(n) != workers}
    assert not narrow, narrow
    names = [o.path for o in storage.list_files(f"{out}/commoncrawl/_dedup")]
    assert f"{out}/commoncrawl/_dedup/minhash-index/state.json" in names  # the index lives in the bucket

    # the mixture build as Ray tasks, on the bucket's output; the local build on the local run's
    from mixtures import store
    from mixtures.build import build_stage
    from mixtures.spec import load_mixture
    from tests.helpers.mixture_data import write_mixture

    mix = write_mixture(
        str(tmp_path / "mix.yaml"), {"commoncrawl": {"share": 1.0}}, stage="cc", shard_max_tokens=400
    )
    mix_executor = RayExecutor(progress=False)
    on_ray = build_stage(load_mixture(path=mix), out, executor=mix_executor)
    local = build_stage(load_mixture(path=mix), local_run, executor="local")
    assert set(on_ray["execution"]["nodes"]["scan"]) == workers  # a scan task per docs file
    mixture_passes = {d: len(n) for d, n in mix_executor.nodes.items() if len(n) >= 2}
    assert "mixture cc: tokens and decontamination" in mixture_passes, mixture_passes
    assert all(set(mix_executor.nodes[d]) == workers for d in mixture_passes), mix_executor.nodes

    def shard_rows(output: str, manifest: dict) -> list[dict]:
        stage = storage.join(output, "mixtures", "cc")
        return [
            r
            for sh in manifest["shards"]
            for r in store.read_table(storage.join(stage, sh["file"])).to_pylist()
        ]

    rows_on_ray = shard_rows(out, on_ray)
    assert rows_on_ray == shard_rows(local_run, local) and len(rows_on_ray) == on_ray["documents"] > 0


def _held(fn, flags: str, item):
    """``fn(item)`` once ``flags/go`` exists; says first that a task of the pass started on this node."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    open(os.path.join(flags, f"started-{node}"), "w").close()
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(flags, "go")) and time.time() < deadline:
        time.sleep(0.05)
    return fn(item)


class HoldingExecutor(RayExecutor):
    """Holds the tasks of one pass until the driver has removed a worker node that runs one of them."""

    def __init__(self, pass_name: str, flags: str):
        super().__init__(progress=False)
        self.pass_name, self.flags = pass_name, flags

    def map(self, fn, items, desc=""):
        if desc == self.pass_name:
            fn = functools.partial(_held, fn, self.flags)
        return super().map(fn, items, desc)


def test_a_node_removed_mid_pass_changes_nothing(cluster, inputs, local_run, monkeypatch, tmp_path):
    flags = str(tmp_path / "flags")
    os.makedirs(flags)
    ex = HoldingExecutor("dedup: buckets", flags)
    monkeypatch.setattr(dedup.stages, "get_executor", lambda *a, **k: ex)
    removed: list[str] = []

    def remove_a_worker() -> None:
        while not (started := glob.glob(os.path.join(flags, "started-*"))):
            time.sleep(0.05)
        victim = started[0].rsplit("started-", 1)[1]
        node = next(n for n in cluster.worker_nodes if n.node_id == victim)
        cluster.remove_node(node)  # kills its raylet and the task held there
        removed.append(victim)
        open(os.path.join(flags, "go"), "w").close()

    remover = threading.Thread(target=remove_a_worker, daemon=True)
    remover.start()
    out = f"s3://{BUCKET}/out-removed"
    try:
        run_recipe(recipe(**overrides("ray")), IN, out, executor="ray", progress=False)
    finally:
        remover.join(timeout=60)
        cluster.add_node(object_store_memory=100_000_000, num_cpus=1)
        cluster.wait_for_nodes()
    assert removed  # a bucket task had started on the removed node (it wrote its flag there)
    assert removed[0] not in ex.nodes["dedup: buckets"]  # its bucket task was rerun elsewhere
    assert_same_output(out, local_run)


def _fails_once(flags: str, path: str) -> str:
    """Reads ``path`` from the store, after one attempt that fails as a store error does."""
    first = os.path.join(flags, "failed-once")
    if not os.path.exists(first):
        open(first, "w").close()
        raise storage.StorageError(f"cannot open {path}: connection reset")
    return storage.read_bytes(path).decode()


def test_a_storage_error_in_a_task_is_retried(cluster, s3, tmp_path):
    storage.write_bytes(f"s3://{BUCKET}/retry/x.txt", b"after a retry")
    flags = str(tmp_path)
    assert RayExecutor(progress=False).map(
        functools.partial(_fails_once, flags), [f"s3://{BUCKET}/retry/x.txt"]
    ) == ["after a retry"]
    assert os.path.exists(os.path.join(flags, "failed-once"))


def test_cron_on_the_cluster_over_the_bucket(cluster, inputs, local_run, tmp_path):
    """The README's cron job: ``winnow cron`` on the cluster with INPUT and OUTPUT in the bucket, no shared folder;
    the local run's rows, then a second run that finds nothing to do."""
    import yaml

    from pipelines.sources.commoncrawl import without_models
    from pipelines.sources.registry import deep_merge
    from tests.helpers.cli import command
    from tests.helpers.mixture_data import write_mixture

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    config = deep_merge(deep_merge({"input": IN}, without_models()), overrides("ray"))
    (cfg / "commoncrawl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    mix = write_mixture(str(tmp_path / "cc.yaml"), {"commoncrawl": {"share": 1.0}}, stage="cc")
    out = f"s3://{BUCKET}/out-cron"
    argv = ["--output", out, "--config-dir", str(cfg), "--sources", "commoncrawl", "--stages", mix]
    cron_main = command("cron")
    assert cron_main([*argv, "--executor", "ray"]) == 0
    assert_same_output(out, local_run)
    workers = {n.node_id for n in cluster.worker_nodes}
    assert {
        storage.read_json(o.path)["node"] for o in storage.list_files(f"{out}/commoncrawl/stats")
    } == workers
    assert storage.exists(f"{out}/mixtures/cc/manifest.json") and storage.exists(f"{out}/report/index.html")
    assert cron_main([*argv, "--executor", "ray"]) == 0
    logs = storage.list_files(f"{out}/_cron/logs")
    assert (
        len(logs) == 2 and "nothing changed since the last run" in storage.read_bytes(logs[-1].path).decode()
    )
