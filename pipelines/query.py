"""DuckDB views over an output tree: ``docs``, ``rejected``, ``stats``, ``step_stats`` and one pair per source.

Scores are columns, so a threshold is re-chosen with SQL instead of a rerun::

    SELECT count(*) FROM docs WHERE lang_score > 0.8
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
from typing import Any

import duckdb

from pipelines.core import storage
from pipelines.core.errors import is_environment_error
from pipelines.core.folder import Folder
from pipelines.core.layout import parquet_files_sql
from pipelines.core.sql import quote, string_list

log = logging.getLogger(__name__)


def connect(output: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over every Parquet/JSON family found under ``output``.

    ``output`` may be an ``s3://`` / ``gs://`` URI: see :func:`_object_store_views`."""
    con = duckdb.connect()
    folder = Folder(output)
    # on an object store DuckDB's own readers would need httpfs (a run-time download): pyarrow reads the objects
    if folder.remote:
        output = folder.location
        _object_store_views(con, folder)
    else:
        output = os.path.abspath(output)
        _local_views(con, output)
    for hook in VIEW_HOOKS:
        module, func = hook.split(":")
        getattr(importlib.import_module(module), func)(con, output)
    return con


def _local_views(con: duckdb.DuckDBPyConnection, output: str) -> None:
    families = {"docs": "docs/*.parquet", "rejected": "rejected/*.parquet"}
    sources = sorted(d for d in os.listdir(output) if os.path.isdir(os.path.join(output, d))) if os.path.isdir(
        output) else []
    for view, pattern in families.items():
        names = []
        for src in sources:
            files = parquet_files_sql(os.path.join(output, src, pattern))
            if files:
                names.append(f"{src}_{view}")
                con.execute(f"CREATE VIEW {names[-1]} AS SELECT * FROM read_parquet({files}, union_by_name=true)")
        if names:
            con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(f"SELECT * FROM {n}" for n in names))
    stats = [os.path.join(output, s, "stats", "*.json") for s in sources
             if glob.glob(os.path.join(output, s, "stats", "*.json"))]
    if stats:
        listing = string_list(stats)
        con.execute(f"CREATE VIEW stats AS SELECT * FROM read_json_auto({listing}, union_by_name=true, "
                    "maximum_object_size=67108864)")
        con.execute(STEP_STATS_VIEW)


STEP_STATS_VIEW = ("CREATE VIEW step_stats AS SELECT source, input, key, s.name AS step, s.kind, s.seen, s.kept, "
                   "s.changed, s.seconds FROM (SELECT source, input, key, unnest(steps) AS s FROM stats)")


def parquet_dataset(folder: Folder, uris: list[str]) -> Any:
    """A pyarrow dataset over Parquet objects, with the union of their schemas (DuckDB's union_by_name); None when
    not one of them is readable."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    fs = folder.fs
    paths = [storage.resolve(u)[1] for u in uris]

    def schema_of(path: str) -> pa.Schema | None:
        try:
            return pq.read_schema(path, filesystem=fs)
        except Exception as exc:  # noqa: BLE001 - a damaged object is named and left out, the view still works
            if is_environment_error(exc):
                raise
            log.warning("skipping unreadable Parquet object %s: %s", path, exc)
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        schemas = list(pool.map(schema_of, paths))
    paths = [p for p, s in zip(paths, schemas, strict=True) if s is not None]
    if not paths:  # every object damaged: nothing to read (named in the WARNINGs above)
        return None
    schema = pa.unify_schemas([s for s in schemas if s is not None], promote_options="permissive")
    return ds.dataset(paths, filesystem=fs, format="parquet", schema=schema)


def _object_store_views(con: duckdb.DuckDBPyConnection, folder: Folder) -> None:
    """The same views over ``s3://`` / ``gs://``: DuckDB's httpfs extension would have to be downloaded at run time,
    so Parquet families are pyarrow datasets (read through pyarrow's S3/GCS filesystem, with projection and filter
    pushdown) registered as DuckDB views, and the small stats JSON files are loaded into a table."""
    import tempfile

    by_family: dict[tuple[str, str], list[str]] = {}
    for o in folder.list():  # names starting with a dot are left out
        parts = o.path[len(folder.location) + 1 :].split("/")
        if len(parts) == 3 and parts[1] in ("docs", "rejected", "duplicates") and parts[2].endswith(".parquet"):
            by_family.setdefault((parts[0], parts[1]), []).append(o.uri)
        elif len(parts) == 3 and parts[1] == "stats" and parts[2].endswith(".json"):
            by_family.setdefault((parts[0], "stats"), []).append(o.uri)
        elif len(parts) == 2 and parts[0] == "duplicates" and parts[1].endswith(".parquet"):
            by_family.setdefault(("", "duplicates"), []).append(o.uri)
    sources = sorted({src for src, _ in by_family if src})
    for view in ("docs", "rejected"):
        names = []
        for src in sources:
            dataset = parquet_dataset(folder, by_family[(src, view)]) if (src, view) in by_family else None
            if dataset is not None:
                names.append(f"{src}_{view}")
                con.register(names[-1], dataset)
        if names:
            con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(f"SELECT * FROM {n}" for n in names))
    dup_files = [u for (src, fam), us in sorted(by_family.items()) if fam == "duplicates" for u in us]
    if dup_files and (dataset := parquet_dataset(folder, dup_files)) is not None:
        con.register("duplicates", dataset)
    stats_files = [u for (src, fam), us in sorted(by_family.items()) if fam == "stats" for u in us]
    if stats_files:
        from concurrent.futures import ThreadPoolExecutor

        with tempfile.TemporaryDirectory(prefix="winnow-query-") as tmp, ThreadPoolExecutor(16) as pool:
            names = [u[len(folder.location) + 1 :] for u in stats_files]
            for i, data in enumerate(pool.map(folder.read_bytes, names)):
                with open(os.path.join(tmp, f"{i:08d}.json"), "wb") as f:
                    f.write(data)
            con.execute("CREATE TABLE _stats AS SELECT * FROM read_json_auto("
                        f"{quote(os.path.join(tmp, '*.json'))}, union_by_name=true, maximum_object_size=67108864)")
        con.execute("CREATE VIEW stats AS SELECT * FROM _stats")
        con.execute(STEP_STATS_VIEW)


#: functions ``(con, output)`` of other packages that add their own views, as "module:function"
VIEW_HOOKS: tuple[str, ...] = ("mixtures.views:mixture_views", "dedup.views:dedup_views")


def views(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]


def run_query(output: str, sql: str) -> tuple[list[str], list[tuple]]:
    """(columns, every row)."""
    cols, rows, _ = query_rows(output, sql)
    return cols, rows


def query_rows(output: str, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple], int]:
    """(columns, the first ``limit`` rows or all, the total row count); rows past the limit are counted, not kept."""
    con = connect(output)
    try:
        rel = con.execute(sql)
    except duckdb.CatalogException as exc:
        listing = ", ".join(views(con)) or "none (run a pipeline first)"
        raise SystemExit(f"{exc}\nviews under {output}: {listing}") from exc
    cols = [d[0] for d in rel.description] if rel.description else []
    if limit is None:
        rows = rel.fetchall()
        return cols, rows, len(rows)
    rows = rel.fetchmany(limit) if limit > 0 else []
    total = len(rows)
    while chunk := rel.fetchmany(10_000):
        total += len(chunk)
    return cols, rows, total


FORMATS = ("table", "csv", "json")
TABLE_LIMIT = 50  # rows a table shows unless --limit says otherwise; csv and json are unlimited by default


def format_rows(cols: list[str], rows: list[tuple], fmt: str = "table", total: int | None = None) -> str:
    """``rows`` as an aligned table (with a note of rows left out), CSV with a header, or JSON Lines."""
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        import json

        return "\n".join(
            json.dumps(dict(zip(cols, r, strict=True)), default=str, ensure_ascii=False) for r in rows
        )
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    return format_table(cols, rows, total)


def _plain(v: Any) -> Any:
    """A CSV cell: lists and structs as JSON, everything else as is (None -> empty)."""
    if isinstance(v, list | dict):
        import json

        return json.dumps(v, default=str, ensure_ascii=False)
    return v


def format_table(cols: list[str], rows: list[tuple], total: int | None = None, max_width: int = 60) -> str:
    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        s = s.replace("\n", "\\n")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    total = len(rows) if total is None else total
    note = f"({total:,} row{'s' if total != 1 else ''}"
    if total > len(rows):
        note += f"; {len(rows):,} shown, {total - len(rows):,} more: raise --limit, or --format csv|json for all"
    out.append(note + ")")
    return "\n".join(out)
