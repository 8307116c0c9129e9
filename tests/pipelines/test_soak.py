"""The soak, short: all six sources over good and hostile inputs, the driver killed at a random moment on a machine
loaded by CPU burners, rerun until done; the output equals a quiet uninterrupted run (``bench/soak.py`` is the long
version, run by hand)."""

from __future__ import annotations

import pytest

from bench.soak import SOURCES, soak


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_and_loaded_runs_end_with_the_same_output_as_a_quiet_run(tmp_path):
    report = soak(str(tmp_path), quick=True, executor="local", kills=1, burners=2, seed=3)
    assert set(report["sources"]) == set(SOURCES)
    assert report["hostile_cases"] >= 20
    assert report["kills"] >= 3, report  # kills land before the run ends for most sources
    assert report["orphans"] == 0, report  # no process of a killed driver outlived it
    for source, result in report["sources"].items():
        assert result["attempts"][-1]["exit"] == 0, (source, result["attempts"])
        assert result["soaked"] == result["quiet"], (source, result)
        assert not result["quiet"]["docs"].startswith("0 rows"), source  # the good inputs gave documents
