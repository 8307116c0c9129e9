"""Hostile input across every source: each case ends as a recorded rejection, skip or read error (never a crash of
the run, never a lost document), nothing is written outside OUTPUT, and memory stays under a cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.ops_hostile import ESCAPE_ABS, build_cases
from tests.helpers.paths import REPO

pytestmark = pytest.mark.timeout(300)
HEADROOM_MB = 2560  # RLIMIT_AS above the address space after imports and model loading: a runaway fails fast
PEAK_RSS_CAP_MB = 1536


def _tree(root: str, skip: str) -> set[str]:
    out = set()
    for d, _dirs, files in os.walk(root):
        if os.path.abspath(d).startswith(skip):
            continue
        out.update(os.path.join(d, f) for f in files)
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    inputs, out, tmp, cwd = (str(root / n) for n in ("in", "out", "tmp", "a/b/c/cwd"))
    for d in (tmp, cwd):
        os.makedirs(d)
    cases = build_cases(inputs)
    before = _tree(str(root), out)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "helpers", "ops_hostile.py"), inputs, out, str(HEADROOM_MB)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=cwd,  # relative escapes would land inside root
        env={**os.environ, "TMPDIR": tmp},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {
        "cases": cases,
        "results": json.loads(proc.stdout.splitlines()[-1]),
        "root": str(root),
        "out": out,
        "before": before,
        "tmp": tmp,
    }


def test_at_least_twenty_cases_over_every_source(hostile):
    cases = hostile["cases"]
    assert set(cases) == {"commoncrawl", "github", "books", "arxiv", "stackexchange", "wikipedia"}
    assert sum(len(v) for v in cases.values()) >= 20


def test_every_case_is_recorded_and_no_run_crashed(hostile):
    results, problems = hostile["results"], []
    for source, cases in hostile["cases"].items():
        res = results[source]
        assert "error" not in res, f"{source}: the whole run failed: {res.get('error')}"
        for name, expect in cases.items():
            stats = res["stats"].get(name)
            if stats is None:
                problems.append(f"{source}/{name}: no stats")
                continue
            assert stats["read"] == stats["kept"] + stats["rejected"]
            record = [*stats["rejected_by_reason"], *stats["skipped"], *stats["errors"]]
            if not any(word in r for word in expect for r in record):
                problems.append(
                    f"{source}/{name}: expected one of {expect}, got {record} (kept {stats['kept']})"
                )
            assert all(len(e) < 2000 for e in stats["errors"]), "hostile bytes copied into an error message"
    assert not problems, "\n".join(problems)


def test_nothing_is_written_outside_output(hostile):
    after = _tree(hostile["root"], hostile["out"])
    assert after == hostile["before"], sorted(after ^ hostile["before"])
    assert not os.listdir(hostile["tmp"])  # spills (StackExchange SQLite, 7z extraction) are cleaned up
    assert not os.path.exists(ESCAPE_ABS)
    out_files = _tree(hostile["out"], "\0")
    assert all(os.path.abspath(p).startswith(hostile["out"]) for p in out_files)
    assert not any("escaped" in p for p in out_files)


def test_memory_stays_under_the_cap(hostile):
    results = hostile["results"]
    assert results["peak_rss_mb"] < PEAK_RSS_CAP_MB, results


def _one(source: str, path: str, out: str) -> dict:
    from pipelines.runner import run_recipe
    from pipelines.sources.commoncrawl import without_models
    from pipelines.sources.registry import build_recipe, deep_merge, load_config

    config = load_config(source)
    if source == "commoncrawl":
        config = deep_merge(config, without_models())
    return run_recipe(build_recipe(source, config), path, out, executor="local", progress=False).summary


def test_a_warc_cut_inside_its_headers_is_recorded(tmp_path):
    from tests.helpers.ops_hostile import PAGE, _warc

    good = _warc([("ok", PAGE)])
    (tmp_path / "cut.warc.gz").write_bytes(good[: len(good) // 2])
    s = _one("commoncrawl", str(tmp_path / "cut.warc.gz"), str(tmp_path / "out"))
    assert s["rejected"] or s["skipped"] or s["errors"]


def test_a_truncated_arxiv_archive_is_recorded(tmp_path):
    from tests.helpers.ops_hostile import _tar

    paper = b"\\documentclass{article}\n\\begin{document}\n\\section{Intro}\nText.\n\\end{document}\n"
    (tmp_path / "2101.00004.tar.gz").write_bytes(_tar({"main.tex": paper * 2000})[:700])
    s = _one("arxiv", str(tmp_path / "2101.00004.tar.gz"), str(tmp_path / "out"))
    assert s["rejected"] or s["errors"] or any("read_error" in k for k in s["skipped"])
