"""After kill -9 of the process that made a pool, its ProcessExecutor workers die too (they used to stay forever)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers.paths import REPO

DRIVER = """
import sys, time
sys.path.insert(0, {repo!r})
from pipelines.core.executor import ProcessExecutor

def slow(x):
    time.sleep(60)
    return x

if __name__ == "__main__":
    print("START", flush=True)
    ProcessExecutor(workers=2).map(slow, [1, 2, 3, 4])
"""


@pytest.mark.timeout(120)
def test_pool_workers_die_with_a_killed_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=REPO))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "START"
    driver = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while len(driver.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = driver.children()
    assert len(workers) >= 2, "the pool did not start"
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    for p in alive:  # clean up before failing
        p.kill()
    assert not alive, f"{len(alive)} pool worker(s) outlived the killed driver"
