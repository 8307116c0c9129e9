"""Faults a cron job on a cluster meets: the driver killed with SIGKILL at random points, a Ray worker dying in the
middle of a task, and two runs started on the same OUTPUT."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pyarrow as pa
import pytest

from pipelines.core.locks import run_lock
from pipelines.core.steps import Step, StepResult
from pipelines.runner import run_recipe
from pipelines.sources.registry import build_recipe, load_config
from tests.helpers.ops import (
    REPO,
    kill_matching,
    output_digest,
    run_cli,
    stray_files,
    warc_copies,
    write_cc_config,
)

pytestmark = pytest.mark.timeout(300)
DRIVER = os.path.join(REPO, "tests", "helpers", "ops_driver.py")


@pytest.fixture(scope="module")
def cc(tmp_path_factory):
    """Six WARC inputs (three copies of the fixtures), the test config and the output of an uninterrupted run."""
    root = tmp_path_factory.mktemp("ops-faults")
    inputs = str(root / "in")
    warc_copies(inputs, 3)
    config = write_cc_config(str(root))
    reference = str(root / "reference")
    t0 = time.perf_counter()
    run_recipe(
        build_recipe("commoncrawl", load_config("commoncrawl", config)),
        inputs,
        reference,
        executor="local",
        progress=False,
    )
    return {
        "root": root,
        "inputs": inputs,
        "config": config,
        "reference": output_digest(reference, "commoncrawl"),
        "seconds": time.perf_counter() - t0,
    }


def _start_driver(
    cc, out: str, executor: str = "local", env: dict[str, str] | None = None
) -> subprocess.Popen:
    """The driver subprocess, once it says READY (with ``env``, its stderr is not kept: Ray writes a lot)."""
    proc = subprocess.Popen(
        [sys.executable, DRIVER, "commoncrawl", cc["config"], cc["inputs"], out, executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if env is None else subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()[-3000:] if proc.stderr else ""
    return proc


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_driver_killed_at_a_random_point_then_rerun_equals_an_uninterrupted_run(cc, seed):
    out = str(cc["root"] / f"killed-{seed}")
    delay = random.Random(seed).uniform(0.0, cc["seconds"] * 1.2)
    proc = _start_driver(cc, out)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    done_before = (
        len(os.listdir(os.path.join(out, "commoncrawl", "_done")))
        if os.path.isdir(os.path.join(out, "commoncrawl", "_done"))
        else 0
    )
    rerun = _start_driver(cc, out)
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, stderr[-3000:]
    assert stdout.split() == [
        "DONE",
        str(6 - done_before),
    ]  # completed inputs were skipped, the rest processed
    got = output_digest(out, "commoncrawl")
    assert got == cc["reference"], f"seed {seed}: killed after {delay:.2f}s with {done_before} input(s) done"
    ids = [i for kind in ("docs", "rejected") for i, _ in got[kind]]
    assert len(ids) == len(set(ids)), "a document was written twice"
    assert not stray_files(out, "commoncrawl")


def test_driver_with_embedded_ray_killed_mid_run_leaves_no_ray_behind_and_rerun_is_identical(cc):
    """The cron deployment: the driver runs embedded Ray; SIGKILL it once inputs are completing, then rerun."""
    out = str(cc["root"] / "killed-ray")
    done = os.path.join(out, "commoncrawl", "_done")
    ray_tmp = tempfile.mkdtemp(
        prefix="wops-kr-", dir="/tmp"
    )  # this run's Ray session lives here (RAY_TMPDIR)
    try:
        proc = _start_driver(cc, out, "ray", env={**os.environ, "RAY_TMPDIR": ray_tmp})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (os.path.isdir(done) and os.listdir(done)):
            time.sleep(0.05)
        time.sleep(random.Random(7).uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        time.sleep(3)
        assert kill_matching(ray_tmp) == 0, "Ray processes outlived their killed driver"
        # counted once Ray is gone: a worker may finish the input it was on while Ray reaps it after the driver
        done_before = len(os.listdir(done))
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert 1 <= done_before
    rerun = _start_driver(cc, out)
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, stderr[-3000:]
    assert stdout.split() == ["DONE", str(6 - done_before)]
    assert output_digest(out, "commoncrawl") == cc["reference"]
    assert not stray_files(out, "commoncrawl")


@dataclass
class DieOnceInTheMiddle(Step):
    """Test step: the first time a worker reaches the second batch of an input whose name starts with ``prefix`` it
    kills its own process (os._exit, as the OOM killer or a node failure would); a marker file makes the retry pass."""

    marker_dir: str = ""
    prefix: str = "copy0-"
    name: str = "die_once"
    kind: str = "transform"

    def start_input(self, path: str) -> None:
        self._input, self._batches = os.path.basename(path), 0

    def process(self, batch: pa.Table) -> StepResult:
        self._batches += 1
        marker = os.path.join(self.marker_dir, self._input)
        if self._batches == 2 and self._input.startswith(self.prefix) and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return StepResult(batch, None, 0)


def test_a_worker_killed_mid_task_is_retried_and_the_output_is_correct(cc, ray_local, tmp_path):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    markers = tmp_path / "markers"
    markers.mkdir()
    recipe = build_recipe("commoncrawl", load_config("commoncrawl", cc["config"]))
    recipe.steps.insert(0, DieOnceInTheMiddle(marker_dir=str(markers)))
    out = str(tmp_path / "out")
    result = run_recipe(recipe, cc["inputs"], out, executor="ray", progress=False)
    # the first attempt of each copy0 input died in its second batch (a new worker process ran the retry)
    assert sorted(os.listdir(markers)) == sorted(
        n for n in os.listdir(cc["inputs"]) if n.startswith("copy0-")
    )
    assert result.processed == 6
    got = output_digest(out, "commoncrawl")
    assert got == cc["reference"]
    assert not stray_files(out, "commoncrawl")  # the dead attempts' partial files are gone


def test_a_second_run_on_the_same_output_refuses_or_waits(cc, tmp_path):
    out = tmp_path / "out"
    args = [
        "run",
        "--source",
        "commoncrawl",
        "--input",
        cc["inputs"],
        "--output",
        str(out),
        "--config",
        cc["config"],
        "--executor",
        "local",
        "--no-progress",
    ]
    with run_lock(
        str(out / "commoncrawl")
    ):  # a first run holds OUTPUT (the lock is an flock: per process file)
        refused = run_cli(args)
        assert refused.returncode == 2
        assert "another Winnow run is writing to" in refused.stderr and "--wait" in refused.stderr
        assert f"pid {os.getpid()}" in refused.stderr  # the message names the holder
        assert not os.path.exists(out / "commoncrawl" / "docs")  # nothing written while refused
        waiting = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "winnow"), *args, "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        time.sleep(6)
        assert waiting.poll() is None, "--wait did not wait for the lock"
        assert not os.path.exists(out / "commoncrawl" / "docs")
    stdout, stderr = waiting.communicate(timeout=240)
    assert waiting.returncode == 0, stderr[-3000:]
    assert "6 processed" in stdout
    assert output_digest(str(out), "commoncrawl") == cc["reference"]
    assert json.load(open(out / "commoncrawl" / "summary.json"))["inputs"] == 6
