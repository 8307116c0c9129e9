"""The extraction time limit counts the extracting thread's CPU time, so its verdicts do not depend on machine load."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from filters.extract import ExtractionTimeout, ExtractText, time_limit

pytestmark = pytest.mark.timeout(120)


def burn(cpu_seconds: float) -> None:
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


@contextlib.contextmanager
def cpu_burners(n: int = 3) -> Iterator[None]:
    """``n`` processes spinning on the CPU (more than this machine has cores to spare), stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def test_waiting_does_not_use_the_budget_and_spinning_does():
    with time_limit(0.2):
        time.sleep(0.6)  # three times the limit in wall time, no CPU
    before = time.thread_time()
    with pytest.raises(ExtractionTimeout) as hit:
        with time_limit(0.2):
            burn(5.0)
    used = time.thread_time() - before
    assert hit.value.kind == "cpu"
    assert 0.2 <= used < 2.0, used  # stopped once the budget was spent, not at the end of the work


def test_the_wall_clock_backstop_stops_a_call_that_never_uses_cpu():
    with pytest.raises(ExtractionTimeout) as hit:
        with time_limit(5.0, wall_backstop_s=0.3):
            time.sleep(3)
    assert hit.value.kind == "wall"


def _pages(monkeypatch) -> pa.Table:
    """Pages whose extraction costs a fixed amount of CPU (0.02 s per 1,000 characters), as parsing does."""
    import trafilatura

    def costly_extract(html: str, **kwargs) -> str:
        burn(len(html) / 1000 * 0.02)
        return html.replace("<p>", "").replace("</p>", "")

    monkeypatch.setattr(trafilatura, "extract", costly_extract)
    sizes = [500, 3_000, 6_000, 9_000, 30_000, 60_000]  # 0.01 .. 1.2 s of CPU each
    return pa.table(
        {
            "id": [f"p{n}" for n in sizes],
            "text": pa.array(["<p>" + "w" * n + "</p>" for n in sizes], pa.large_string()),
            "content_format": ["html"] * len(sizes),
        }
    )


def test_which_pages_time_out_is_the_same_on_a_quiet_and_on_a_loaded_machine(monkeypatch):
    pages = _pages(monkeypatch)
    step = ExtractText(timeout_s=0.4, speedups=False)
    quiet = list(step(pages).reasons)
    assert quiet == [None, None, None, None, "extract:timeout", "extract:timeout"]
    with cpu_burners():
        loaded = list(step(pages).reasons)
    assert loaded == quiet
