"""Every source on its own fixtures, with its shipped config, against stored row digests.

A refactoring must not change a byte of what a run keeps or rejects: this test runs all six recipes as
``make pipeline SOURCE=<source>`` does (default config, default INPUT under tests/fixtures) and compares the digest of
every docs and rejected row with ``tests/fixtures/output_digests.json``.  A change that is meant to alter outputs
(a new step, another threshold) regenerates the file and says so in its commit::

    WINNOW_UPDATE_DIGESTS=1 python -m pytest tests/test_output_digests.py
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import pyarrow.parquet as pq
import pytest

from pipelines.runner import run_recipe
from pipelines.sources.registry import REPO_ROOT, available_sources, build_recipe, load_config

DIGESTS = os.path.join(os.path.dirname(__file__), "fixtures", "output_digests.json")
UPDATE = os.environ.get("WINNOW_UPDATE_DIGESTS") == "1"


def _rounded(value: object) -> object:
    """Model scores to 6 significant digits: the last bits of a float may differ between CPUs (SIMD paths)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _summary(out: str, source: str) -> dict[str, dict[str, object]]:
    """Per kind: rows, and one sha1 over the sorted row digests (paths of the run never enter a row)."""
    summary = {}
    for kind in ("docs", "rejected"):
        rows = []
        for path in sorted(glob.glob(os.path.join(out, source, kind, "*.parquet"))):
            for row in pq.read_table(path).to_pylist():
                blob = json.dumps(_rounded(row), sort_keys=True, default=str, ensure_ascii=False)
                rows.append(hashlib.sha1(blob.encode("utf-8")).hexdigest())
        h = hashlib.sha1("\n".join(sorted(rows)).encode("utf-8")).hexdigest()
        summary[kind] = {"rows": len(rows), "sha1": h}
    return summary


@pytest.mark.parametrize("source", sorted(available_sources()))
def test_fixture_outputs_match_the_stored_digests(source, tmp_path):
    config = load_config(source)
    recipe = build_recipe(source, config)
    run_recipe(
        recipe, os.path.join(REPO_ROOT, config["input"]), str(tmp_path), executor="local", progress=False
    )
    got = _summary(str(tmp_path), source)
    stored = {}
    if os.path.exists(DIGESTS):
        with open(DIGESTS, encoding="utf-8") as f:
            stored = json.load(f)
    if UPDATE:
        stored[source] = got
        with open(DIGESTS, "w", encoding="utf-8") as f:
            json.dump(stored, f, indent=1, sort_keys=True)
            f.write("\n")
    assert source in stored, f"no stored digest for {source}: run with WINNOW_UPDATE_DIGESTS=1"
    assert got == stored[source], (
        f"{source}: the fixture outputs changed ({got} != {stored[source]}); if that is intended, regenerate "
        "tests/fixtures/output_digests.json with WINNOW_UPDATE_DIGESTS=1 and say why in the commit"
    )
