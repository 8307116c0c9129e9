"""``winnow cron``: every source, then mixtures and the report; a log file; non-zero exit on failure; nothing done
when nothing changed."""

from __future__ import annotations

import os
import shutil

import pytest

from pipelines.cron import main as cron_main
from tests.helpers.ops import CC_CONFIG, run_cli
from tests.helpers.paths import FIXTURES

pytestmark = pytest.mark.timeout(300)
STAGES = "core,anneal"  # long_context selects nothing from the small fixtures (a real failure, tested below)


def _mtimes(out) -> dict[str, int]:
    return {
        p: os.stat(os.path.join(out, "mixtures", p, "manifest.json")).st_mtime_ns for p in STAGES.split(",")
    }


def _log(out) -> str:
    with open(os.path.join(out, "_cron", "cron.log"), encoding="utf-8") as f:
        return f.read()


def test_cron_runs_everything_then_nothing_then_only_what_changed(tmp_path):
    books = tmp_path / "books-in"
    shutil.copytree(os.path.join(FIXTURES, "books"), books)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "commoncrawl.yaml").write_text(CC_CONFIG)
    (cfg / "books.yaml").write_text(f"input: {books}\n")
    out = str(tmp_path / "out")
    args = ["--output", out, "--config-dir", str(cfg), "--executor", "local", "--stages", STAGES]

    assert cron_main(args) == 0
    first = _log(out)
    for source in ("commoncrawl", "github", "books", "arxiv", "stackexchange", "wikipedia"):
        assert os.path.exists(os.path.join(out, source, "summary.json")), source
        assert f"{source}: " in first and "processed" in first
    assert os.path.exists(os.path.join(out, "report", "index.html"))
    built = _mtimes(out)

    assert cron_main(args) == 0  # nothing changed: no source started, mixtures untouched
    second = _log(out)[len(first) :]
    assert second.count("unchanged") == 6 and "nothing changed since the last run" in second
    assert "pipelines.runner" not in second and _mtimes(out) == built

    shutil.copy(books / "pg90001.txt", books / "pg90001-copy.txt")  # a new input for one source
    assert cron_main(args) == 0
    third = _log(out)[len(first) + len(second) :]
    assert "books: 6 inputs, 1 processed, 5 already done" in third
    assert third.count("unchanged") == 5
    assert all(_mtimes(out)[s] > built[s] for s in built)  # mixtures rebuilt from the changed source


def test_cron_exits_non_zero_when_a_source_fails_and_still_runs_the_others(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "github.yaml").write_text(f"input: {tmp_path / 'no-such-folder'}\n")
    out = str(tmp_path / "out")
    log = tmp_path / "cron.log"
    res = run_cli(
        [
            "cron",
            "--output",
            out,
            "--config-dir",
            str(cfg),
            "--executor",
            "local",
            "--sources",
            "github,arxiv",
            "--stages",
            "core",
            "--log",
            str(log),
        ]
    )
    assert res.returncode == 1, res.stderr[-2000:]
    text = log.read_text()
    assert "github: FAILED" in text and "no-such-folder" in text
    assert "cron run finished with failures: github" in text
    assert os.path.exists(os.path.join(out, "arxiv", "summary.json"))  # the other source ran
