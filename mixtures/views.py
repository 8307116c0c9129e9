"""DuckDB views over mixture outputs, added to ``winnow query`` / ``make query`` through ``pipelines.query.VIEW_HOOKS``.

``mixture_docs`` (every shard row with its ``stage``), ``mixture_sources`` (one row per stage and source from the
manifests: target vs realised share, tokens, epochs), ``decontamination`` (removed documents with benchmark and
n-gram) and ``token_counts`` (the n_tokens sidecars, with ``source``).
"""

from __future__ import annotations

import glob
import os

import duckdb

from pipelines.core.layout import parquet_files_sql
from pipelines.core.sql import quote

_STAGE = r"regexp_extract(filename, '[\\/]mixtures[\\/]([^\\/]+)[\\/][^\\/]+[\\/][^\\/]+$', 1)"


def mixture_views(con: duckdb.DuckDBPyConnection, output: str) -> None:
    shards = parquet_files_sql(os.path.join(output, "mixtures", "*", "shards", "*.parquet"))
    if shards:
        con.execute(
            f"CREATE VIEW mixture_docs AS SELECT * EXCLUDE (filename), {_STAGE} AS stage "
            f"FROM read_parquet({shards}, filename=true)"
        )
    manifests = os.path.join(output, "mixtures", "*", "manifest.json")
    if glob.glob(manifests):
        con.execute(
            'CREATE VIEW mixture_sources AS SELECT stage, s.name AS source, s."from" AS origin, s.status, '
            "s.target_share, s.effective_target_share, s.realised_share, s.available_tokens, s.target_tokens, "
            "s.realised_tokens, s.epochs, s.max_epochs, s.documents, s.unique_documents, s.contaminated_documents "
            f"FROM (SELECT stage, unnest(sources) AS s FROM read_json_auto({quote(manifests)}, union_by_name=true, "
            "maximum_object_size=67108864))"
        )
    decontam = parquet_files_sql(os.path.join(output, "mixtures", "*", "decontamination", "*.parquet"))
    if decontam:
        con.execute(
            f"CREATE VIEW decontamination AS SELECT * EXCLUDE (filename), {_STAGE} AS stage "
            f"FROM read_parquet({decontam}, filename=true)"
        )
    tokens = parquet_files_sql(os.path.join(output, "*", "tokens", "*.parquet"))
    if tokens:
        con.execute(
            "CREATE VIEW token_counts AS SELECT * EXCLUDE (filename), "
            r"regexp_extract(filename, '([^\\/]+)[\\/]tokens[\\/][^\\/]+$', 1) AS source "
            f"FROM read_parquet({tokens}, filename=true)"
        )
