"""DuckDB views over mixture outputs, added to ``winnow query`` / ``make query`` through ``pipelines.query.VIEW_HOOKS``.

``mixture_docs`` (every shard row with its ``stage``), ``mixture_sources`` (one row per stage and source from the
manifests: target vs realised share, tokens, epochs), ``decontamination`` (removed documents with benchmark and
n-gram) and ``token_counts`` (the n_tokens sidecars, with ``source``).

On an object store (``s3://`` / ``gs://`` OUTPUT) each stage is what its ``manifest.json`` names (the commit rule of
:mod:`mixtures.build`), read with pyarrow and registered in DuckDB (its httpfs would be a run-time download).
"""

from __future__ import annotations

import glob
import os

import duckdb

from pipelines.core import storage
from pipelines.core.folder import Folder, file_info
from pipelines.core.layout import parquet_files_sql
from pipelines.core.sql import quote

_STAGE = r"regexp_extract(filename, '[\\/]mixtures[\\/]([^\\/]+)[\\/][^\\/]+[\\/][^\\/]+$', 1)"


def mixture_views(con: duckdb.DuckDBPyConnection, output: str) -> None:
    if storage.is_uri(output):
        _object_store_views(con, Folder(output))
        return
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


def _register(con: duckdb.DuckDBPyConnection, view: str, parts: list[tuple[str, str, list[str]]]) -> None:
    """``view`` as the union of pyarrow datasets (column ``label`` = value) over object-store Parquet files."""
    import pyarrow.dataset as ds

    selects = []
    for k, (label, value, uris) in enumerate(parts):
        fs, _ = storage.resolve(uris[0])
        con.register(f"_{view}_{k}", ds.dataset([storage.resolve(u)[1] for u in uris], filesystem=fs))
        selects.append(f"SELECT *, {quote(value)} AS {label} FROM _{view}_{k}")
    if selects:
        con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(selects))


def _object_store_views(con: duckdb.DuckDBPyConnection, root: Folder) -> None:
    import pyarrow as pa

    mixtures = root.child("mixtures")
    shards, decontam, sources = [], [], []
    for stage in mixtures.folders():
        try:  # the commit of a build: only what it names is read
            m = mixtures.read_json(f"{stage}/manifest.json")
        except FileNotFoundError:
            continue
        if m["shards"]:
            shards.append(("stage", stage, [mixtures.uri(stage, sh["file"]) for sh in m["shards"]]))
        run = m.get("execution", {}).get("run")
        matches = mixtures.uri(stage, "runs", run, "decontamination", "matches.parquet") if run else None
        if matches and file_info(matches) is not None:
            decontam.append(("stage", stage, [matches]))
        sources += [
            {"stage": stage, **{k: v for k, v in s.items() if k in _SOURCE_FIELDS}} for s in m["sources"]
        ]
    _register(con, "mixture_docs", shards)
    _register(con, "decontamination", decontam)
    if sources:
        con.register("_mixture_sources", pa.Table.from_pylist(sources))
        con.execute(
            'CREATE VIEW mixture_sources AS SELECT stage, name AS source, "from" AS origin, '
            + ", ".join(f for f in _SOURCE_FIELDS if f not in ("name", "from"))
            + " FROM _mixture_sources"
        )
    tokens: dict[str, list[str]] = {}
    for o in root.list("*/tokens/*.parquet"):
        tokens.setdefault(o.path[len(root.location) + 1 :].split("/")[0], []).append(o.uri)
    _register(con, "token_counts", [("source", src, uris) for src, uris in sorted(tokens.items())])


_SOURCE_FIELDS = (
    "name",
    "from",
    "status",
    "target_share",
    "effective_target_share",
    "realised_share",
    "available_tokens",
    "target_tokens",
    "realised_tokens",
    "epochs",
    "max_epochs",
    "documents",
    "unique_documents",
    "contaminated_documents",
)
