"""DuckDB views for dedup outputs (called by ``pipelines.query.connect`` through ``VIEW_HOOKS``).

* ``duplicates``: every clustered document (``id, cluster_id, kept, cluster_size, reason, input``), from a standalone
  ``winnow dedup`` output (``OUTPUT/duplicates/``) or from recipe stages (``OUTPUT/<source>/duplicates/``);
* ``docs`` over ``OUTPUT/docs/*.parquet`` when OUTPUT is a standalone dedup output (no source folders).
"""

from __future__ import annotations

import os

import duckdb

from pipelines.core.layout import parquet_files_sql


def dedup_views(con: duckdb.DuckDBPyConnection, output: str) -> None:
    existing = {
        r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    found = parquet_files_sql(
        os.path.join(output, "duplicates", "*.parquet"), os.path.join(output, "*", "duplicates", "*.parquet")
    )
    if found and "duplicates" not in existing:
        con.execute(f"CREATE VIEW duplicates AS SELECT * FROM read_parquet({found}, union_by_name=true)")
    docs = None if "docs" in existing else parquet_files_sql(os.path.join(output, "docs", "*.parquet"))
    if docs:
        con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet({docs}, union_by_name=true)")
