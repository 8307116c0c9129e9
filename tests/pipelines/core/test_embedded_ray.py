"""The embedded Ray: its own instance while another Ray runs on the machine, and no processes left after kill -9."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import pytest
import yaml

from pipelines.core.embedded_ray import OWNER, kill_processes_naming, reap_dead_sessions
from tests.helpers.paths import FIXTURES, REPO

DRIVER = os.path.join(REPO, "tests", "helpers", "ops_driver.py")
RAY = os.path.join(os.path.dirname(sys.executable), "ray")
BOOKS = os.path.join(FIXTURES, "books")


@pytest.fixture
def base():
    """A short private folder standing for RAY_TMPDIR (Ray's socket paths are limited to 107 bytes)."""
    folder = tempfile.mkdtemp(prefix="wert-", dir="/tmp")
    yield folder
    kill_processes_naming(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _sleeper(*args: str) -> subprocess.Popen:
    """A process whose command line names a session folder, as Ray's agents' do."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *args])


def _session(base: str, name: str, pid: int, create_time: float) -> str:
    folder = os.path.join(base, name)
    os.makedirs(os.path.join(folder, "session_1", "logs"))
    with open(os.path.join(folder, OWNER), "w") as f:
        json.dump({"pid": pid, "create_time": create_time}, f)
    return folder


def test_leftovers_of_a_dead_driver_are_reaped_and_a_live_run_is_left_alone(base):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = _session(base, "wr-dead0000", gone.pid, time.time() - 100)
    me = psutil.Process()
    live = _session(base, "wr-live0000", me.pid, me.create_time())
    orphan = _sleeper(f"--log-dir={dead}/session_1/logs", "dashboard_agent")
    other = _sleeper(f"--log-dir={live}/session_1/logs", "runtime_env_agent")
    try:
        time.sleep(0.5)
        assert reap_dead_sessions(base) == 1
        orphan.wait(timeout=10)  # killed (its status was collected by the reaper's wait)
        assert not psutil.pid_exists(orphan.pid)
        assert not os.path.exists(dead)
        assert other.poll() is None and os.path.isdir(live)
    finally:
        other.kill()
        other.wait()


def _driver(base: str, inputs: str, out: str, config: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=base, RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen(
        [sys.executable, DRIVER, "books", config, inputs, out, "ray"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_run_beside_another_ray_starts_its_own_and_a_killed_runs_ray_is_reaped(base, tmp_path):
    config = tmp_path / "books.yaml"
    config.write_text(yaml.safe_dump({"corpus_stages": {"book_dedup": {"enabled": False}}}))
    inputs = str(tmp_path / "in")
    shutil.copytree(BOOKS, inputs, ignore=shutil.ignore_patterns("*.py"))  # the books, not their generator
    # another user's Ray on this machine, found through RAY_TMPDIR/ray/ray_current_cluster by a plain ray.init()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=base, RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run(
        [
            RAY,
            "start",
            "--head",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--port=0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    other = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any("gcs_server" in c for c in p.info["cmdline"] or [])
        and any(base in c for c in p.info["cmdline"] or [])
    ]
    assert other, "the other Ray did not start"

    killed_out = str(tmp_path / "killed")
    proc = _driver(base, inputs, killed_out, str(config))
    assert proc.stdout.readline().strip() == "READY"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not glob.glob(os.path.join(base, "wr-*", "session_*")):
        time.sleep(0.1)
    sessions = glob.glob(os.path.join(base, "wr-*"))
    assert len(sessions) == 1, "the run did not start its own Ray"
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()

    rerun = _driver(base, inputs, killed_out, str(config))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]  # not "num_cpus and num_gpus must not be provided"
    assert stdout.split()[:2] == ["READY", "DONE"]
    assert not os.path.exists(sessions[0])  # the killed run's Ray folder was reaped with its processes
    assert kill_processes_naming(sessions[0]) == 0
    assert len(os.listdir(os.path.join(killed_out, "books", "_done"))) == len(os.listdir(inputs))
    assert all(p.is_running() for p in other), "the other Ray was touched"
