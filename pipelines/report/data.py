"""Where the report reads and writes: an output tree on local disk or on an object store, through one Folder.

Locally DuckDB reads the Parquet files itself (``read_parquet`` with ``union_by_name``; damaged files are left out
with a WARNING).  On ``s3://`` / ``gs://`` DuckDB's own reader would need its httpfs extension, a run-time
download, so the files become a pyarrow dataset over the store's filesystem (the union of their schemas, damaged
objects left out) registered in DuckDB under a name: the SQL of every section is the same on both.  The page and
its plots are drawn into a local folder first, then written under ``OUTPUT/report/`` one file at a time, each
atomically (a renamed temporary file locally, one PUT on a store), ``index.html`` last.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import duckdb

from pipelines.core import storage
from pipelines.core.folder import Folder
from pipelines.core.layout import parquet_files_sql
from pipelines.query import parquet_dataset

PAGE = "index.html"


def location(output: str) -> str:
    """How the page names OUTPUT: the absolute local path, or the URI."""
    return storage.normalize(output) if storage.is_uri(output) else os.path.abspath(output)


def _literal_prefix(pattern: str) -> tuple[str, str]:
    """``("a/b", "*/c.json")`` for ``"a/b/*/c.json"``: list under the literal folders only, not the whole tree."""
    parts = pattern.strip("/").split("/")
    k = next((i for i, p in enumerate(parts[:-1]) if any(c in p for c in "*?[")), len(parts) - 1)
    return "/".join(parts[:k]), "/".join(parts[k:])


def listed(output: str, pattern: str) -> list[str]:
    """Locations of the files under ``output`` matching the glob ``pattern`` (``**`` any folders), sorted."""
    prefix, rest = _literal_prefix(pattern)
    folder = Folder(output).child(prefix) if prefix else Folder(output)
    return [o.path for o in folder.list(rest)]


def relative(output: str, locations: list[str]) -> list[str]:
    """``locations`` (from :func:`listed`) relative to OUTPUT."""
    root = Folder(output).location.rstrip("/") + "/"
    return [loc[len(root) :] for loc in locations]


def parquet_relation(con: duckdb.DuckDBPyConnection, output: str, pattern: str) -> str | None:
    """A SQL table expression over the Parquet files of ``output`` matching ``pattern``; None when there are
    none (or none readable)."""
    if not storage.is_uri(output):
        files = parquet_files_sql(os.path.join(output, pattern))
        return f"read_parquet({files}, union_by_name=true)" if files else None
    uris = listed(output, pattern)
    dataset = parquet_dataset(Folder(output), uris) if uris else None
    if dataset is None:
        return None
    name = f"_report_{uuid.uuid4().hex[:12]}"
    con.register(name, dataset)
    return name


def read_json(output: str, name: str) -> Any:
    """The JSON file ``name`` (relative to OUTPUT, or a location from :func:`listed`)."""
    root = Folder(output)
    return root.read_json(relative(output, [name])[0] if name.startswith(root.location) else name)


def exists(output: str, name: str) -> bool:
    return Folder(output).isfile(name)


def sources(output: str) -> list[str]:
    """The source folders of OUTPUT: those with a summary.json or docs Parquet files."""
    root = Folder(output)
    return [
        d
        for d in root.folders()
        if root.child(d).isfile("summary.json")
        or root.child(d, "docs").list(suffix=".parquet", recursive=False)
    ]


def manifests(output: str) -> list[dict[str, Any]]:
    """The committed stage manifests (``mixtures/<stage>/manifest.json``), by stage folder name."""
    return [read_json(output, loc) for loc in listed(output, "mixtures/*/manifest.json")]


def decontamination_files(output: str, manifest: dict[str, Any]) -> list[str]:
    """The decontamination tables of a stage: in the stage folder locally, in its committed run's folder on an
    object store (:mod:`mixtures.build`)."""
    stage = f"mixtures/{manifest['stage']}"
    run = (manifest.get("execution") or {}).get("run")
    if storage.is_uri(output) and run:
        stage = f"{stage}/runs/{run}"
    return listed(output, f"{stage}/decontamination/*.parquet")


def publish(drawn: str, output: str) -> str:
    """Write every file of the local folder ``drawn`` under ``OUTPUT/report/``, the page last; returns the page's
    location."""
    report = Folder(output).child("report")
    report.makedirs()
    names = sorted(n for n in os.listdir(drawn) if n != PAGE) + [PAGE]
    for name in names:
        with open(os.path.join(drawn, name), "rb") as f:
            report.write_bytes(name, f.read())
    return report.uri(PAGE)
