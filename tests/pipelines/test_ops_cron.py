"""``winnow cron``: every source, then mixtures and the report; a log file; non-zero exit on failure; nothing done
when nothing changed."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

import pytest

from tests.helpers.cli import command
from tests.helpers.ops import CC_CONFIG, run_cli
from tests.helpers.paths import FIXTURES

cron_main = command("cron")

pytestmark = pytest.mark.timeout(300)
STAGES = "core,anneal"  # long_context selects nothing from the small fixtures ("empty", tested below)


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
    with open(os.path.join(out, "books", "summary.json"), encoding="utf-8") as f:
        book_dedup = json.load(f)["corpus_stages"]["book_dedup"]
    assert book_dedup["incremental"] and book_dedup["new_files"] == 1  # the new input against the index only
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


def _retry_mixture(path, missing: str) -> str:
    path.write_text(
        "stage: retry\nmissing_sources: " + missing + "\nshard_max_tokens: 100000\n"
        "decontaminate: {n: 13, benchmarks: [gsm8k, humaneval]}\n"
        "sources:\n  arxiv: {share: 0.5}\n  github: {share: 0.5}\n"
    )
    return str(path)


def test_cron_retries_a_failed_stage_until_it_succeeds_and_reports_empty_stages(tmp_path, capsys):
    out = str(tmp_path / "out")
    mixture = _retry_mixture(tmp_path / "retry.yaml", "error")  # github is not run: this stage fails
    args = [
        "--output",
        out,
        "--executor",
        "local",
        "--sources",
        "arxiv",
        "--stages",
        f"{mixture},long_context",
    ]

    assert cron_main(args) == 1
    first = _log(out)
    console = capsys.readouterr().out  # what a person running `make cron` sees
    assert console.startswith("winnow cron: FAILED (retried on the next run)\n  sources: arxiv ok\n")
    assert f"  mixture:{mixture}: failed: MixtureError: mixture retry: no documents for github" in console
    assert "  mixture:long_context: empty\n  report: ok\n" in console
    assert (
        f"ERROR winnow.cron: mixture {mixture}: FAILED: MixtureError: mixture retry: no documents for github"
        in first
    )
    assert (
        "WARNING winnow.cron: mixture long_context: empty: no curated document satisfies its selection (arxiv: "
        "the predicate selects no documents; no curated output yet for books, github" in first
    )
    assert "cron run finished with failures: mixture:" + mixture in first
    assert os.path.exists(os.path.join(out, "report", "index.html"))  # the report still ran

    assert cron_main(args) == 1  # nothing changed, but the failed stage is tried again (and fails again)
    second = _log(out)[len(first) :]
    assert (
        "arxiv: unchanged" in second
        and f"mixture {mixture}: retrying (failed last time: MixtureError" in second
    )
    assert "mixture long_context: up to date (empty)" in second

    _retry_mixture(tmp_path / "retry.yaml", "renormalise")  # the user fixes the YAML: the next run builds it
    assert cron_main(args) == 0
    third = _log(out)[len(first) + len(second) :]
    assert f"mixture {mixture}: built" in third and "decontamination (13-grams" in third
    assert glob.glob(os.path.join(out, "mixtures", "retry", "shards", "*.parquet"))

    assert cron_main(args) == 0
    fourth = _log(out)[len(first) + len(second) + len(third) :]
    assert "nothing changed since the last run" in fourth

    assert cron_main([*args, "--strict"]) == 1  # asked to: an empty stage is a failure
    fifth = _log(out)[len(first) + len(second) + len(third) + len(fourth) :]
    assert (
        "ERROR winnow.cron: mixture long_context: FAILED (empty, and empty stages are errors here)" in fifth
    )


def test_cron_retries_the_report_after_an_environment_error(tmp_path, monkeypatch, caplog):
    import pipelines.report.build as report_build
    from pipelines.cron import run_cron

    real, calls = report_build.build_report, []

    def disk_full_once(output):
        calls.append(output)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(output)

    monkeypatch.setattr(report_build, "build_report", disk_full_once)
    out = str(tmp_path / "out")
    with caplog.at_level(logging.INFO, logger="winnow.cron"):
        assert run_cron(out, ["arxiv"], ["long_context"], None, "local") == 1
        assert any(
            r.levelno == logging.ERROR
            and "report: FAILED: OSError: [Errno 28] No space left on device" in r.message
            for r in caplog.records
        )
        caplog.clear()
        assert (
            run_cron(out, ["arxiv"], ["long_context"], None, "local") == 0
        )  # nothing changed: report retried
    assert len(calls) == 2 and os.path.exists(os.path.join(out, "report", "index.html"))
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)
