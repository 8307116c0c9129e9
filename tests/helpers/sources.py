"""Helpers shared by the source and corpus-stage tests: run a recipe locally, read its output, write an input
as the runner would have written it."""

from __future__ import annotations

import glob
import io
import json
import os
import resource
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.schema import CORE_SCHEMA, rejected_schema, table_from_rows
from pipelines.runner import run_recipe
from pipelines.sources.registry import build_recipe, deep_merge, load_config


def run_source(source: str, input_spec: str, out: str, overrides: dict | None = None):
    config = deep_merge(load_config(source), overrides or {})
    recipe = build_recipe(source, config)
    return run_recipe(recipe, input_spec, out, executor="local", progress=False)


def run_source_peak_mb(source: str, input_spec: str, out: str, overrides: dict | None = None):
    """:func:`run_source`, and by how many MB this process's peak RSS grew meanwhile (bounded-memory tests)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_source(source, input_spec, out, overrides)
    return result, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def write_input(root: str, key: str, rows: list[dict], schema: pa.Schema = CORE_SCHEMA) -> None:
    """One input of a written source, as the runner leaves it: ``docs/<key>.parquet``, an empty
    ``rejected/<key>.parquet`` and ``stats/<key>.json`` (corpus-stage tests start from such a source)."""
    for kind in ("docs", "rejected", "stats"):
        os.makedirs(os.path.join(root, kind), exist_ok=True)
    pq.write_table(table_from_rows(rows, schema), os.path.join(root, "docs", f"{key}.parquet"))
    pq.write_table(rejected_schema(schema).empty_table(), os.path.join(root, "rejected", f"{key}.parquet"))
    stats = {"key": key, "read": len(rows), "kept": len(rows), "rejected": 0, "rejected_by_reason": {}}
    with open(os.path.join(root, "stats", f"{key}.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f)


def read_kind(out: str, source: str, kind: str) -> pa.Table:
    files = sorted(glob.glob(os.path.join(out, source, kind, "*.parquet")))
    tables = [pq.read_table(f) for f in files]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else pa.table({"id": pa.array([], pa.string())})


def all_stats(out: str, source: str) -> list[dict]:
    stats = []
    for f in sorted(glob.glob(os.path.join(out, source, "stats", "*.json"))):
        with open(f, encoding="utf-8") as fh:
            stats.append(json.load(fh))
    return stats


def assert_accounting(out: str, source: str) -> None:
    """read = kept + rejected per input, checked against the Parquet files themselves."""
    for s in all_stats(out, source):
        docs = pq.read_table(os.path.join(out, source, "docs", f"{s['key']}.parquet"))
        rej = pq.read_table(os.path.join(out, source, "rejected", f"{s['key']}.parquet"))
        assert s["read"] == docs.num_rows + rej.num_rows, s
        assert s["kept"] == docs.num_rows and s["rejected"] == rej.num_rows, s


def make_tar(
    path: str, members: dict[str, bytes], symlinks: dict[str, str] | None = None, mode: str = "w:gz"
):
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
