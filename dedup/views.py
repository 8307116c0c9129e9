"""DuckDB views for dedup outputs (called by ``pipelines.query.connect`` through ``VIEW_HOOKS``).

* ``duplicates``: every clustered document (``id, cluster_id, kept, cluster_size, reason, input``), from a standalone
  ``winnow dedup`` output (``OUTPUT/duplicates/``) or from recipe stages (``OUTPUT/<source>/duplicates/``);
* ``docs`` over ``OUTPUT/docs/*.parquet`` when OUTPUT is a standalone dedup output (no source folders).
"""

from __future__ import annotations

import glob
import os

import duckdb


def _q(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def dedup_views(con: duckdb.DuckDBPyConnection, output: str) -> None:
    existing = {
        r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    patterns = [
        os.path.join(output, "duplicates", "*.parquet"),
        os.path.join(output, "*", "duplicates", "*.parquet"),
    ]
    found = [p for p in patterns if glob.glob(p)]
    if found and "duplicates" not in existing:
        listing = "[" + ", ".join(_q(p) for p in found) + "]"
        con.execute(f"CREATE VIEW duplicates AS SELECT * FROM read_parquet({listing}, union_by_name=true)")
    docs = os.path.join(output, "docs", "*.parquet")
    if "docs" not in existing and glob.glob(docs):
        con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet({_q(docs)}, union_by_name=true)")
