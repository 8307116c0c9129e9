"""A real two-node Ray cluster on loopback: the CommonCrawl pipeline through RAY_ADDRESS, tasks on both nodes, and
the same output as the embedded run."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pytest

from tests.helpers.ops import CC_CONFIG, output_digest, ray_cluster, run_cli, stray_files, write_cc_config
from tests.helpers.paths import CORPUS, FIXTURES

pytestmark = pytest.mark.timeout(300)


def _inputs(tmp_path) -> str:
    """The fixture WARCs, plus two small real ones when ../shared is present, as four separate inputs."""
    folder = tmp_path / "in"
    folder.mkdir()
    for path in glob.glob(os.path.join(FIXTURES, "commoncrawl", "*.warc.gz")):
        shutil.copy(path, folder)
    for rel in (
        "commoncrawl--whirlwind-python/whirlwind.warc.gz",
        "ukwa--webarchive-discovery/IAH-urls-wget.warc.gz",
    ):
        real = os.path.join(CORPUS, "commoncrawl", "warc", rel)
        if os.path.exists(real):
            shutil.copy(real, folder)
    return str(folder)


def test_two_node_cluster_runs_the_pipeline_on_both_nodes_with_the_embedded_output(tmp_path):
    inputs = _inputs(tmp_path)
    config = write_cc_config(str(tmp_path))
    assert "roberta" in CC_CONFIG
    args = ["run", "--source", "commoncrawl", "--input", inputs, "--config", config, "--no-progress"]
    with ray_cluster([{"head_node": 1}, {"second_node": 1}]) as cluster:
        on_cluster = run_cli([*args, "--output", str(tmp_path / "cluster")], env=cluster.env)
        assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    # the driver connected to the cluster (it did not start its own Ray) and shipped the code as working_dir
    assert "Pushing file package" in on_cluster.stderr or "working_dir" in on_cluster.stderr, (
        on_cluster.stderr[-2000:]
    )
    stats = [
        json.load(open(p)) for p in glob.glob(str(tmp_path / "cluster" / "commoncrawl" / "stats" / "*.json"))
    ]
    assert len(stats) == len(os.listdir(inputs)) >= 2
    nodes = {s["node"] for s in stats}
    assert len(nodes) == 2, f"every input ran on one node: {nodes}"

    embedded = run_cli([*args, "--output", str(tmp_path / "embedded")])
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    ours, theirs = (
        output_digest(str(tmp_path / "cluster"), "commoncrawl"),
        output_digest(str(tmp_path / "embedded"), "commoncrawl"),
    )
    assert ours == theirs
    assert ours["docs"] and ours["rejected"]
    assert sum(s["read"] for s in stats) == len(ours["docs"]) + len(ours["rejected"])
    assert not stray_files(str(tmp_path / "cluster"), "commoncrawl")
