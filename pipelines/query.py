"""DuckDB views over an output tree: ``docs``, ``rejected``, ``stats``, ``step_stats`` and one pair per source.

Scores are columns, so a threshold is re-chosen with SQL instead of a rerun::

    SELECT count(*) FROM docs WHERE lang_score > 0.8
"""

from __future__ import annotations

import glob
import importlib
import os
from typing import Any

import duckdb


def _q(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def connect(output: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over every Parquet/JSON family found under ``output``."""
    con = duckdb.connect()
    output = os.path.abspath(output)
    families = {"docs": "docs/*.parquet", "rejected": "rejected/*.parquet"}
    sources = sorted(d for d in os.listdir(output) if os.path.isdir(os.path.join(output, d))) if os.path.isdir(
        output) else []
    for view, pattern in families.items():
        paths = []
        for src in sources:
            files = glob.glob(os.path.join(output, src, pattern))
            if files:
                paths.append(os.path.join(output, src, pattern))
                con.execute(f"CREATE VIEW {src}_{view} AS SELECT * FROM read_parquet({_q(paths[-1])}, "
                            "union_by_name=true)")
        if paths:
            listing = "[" + ", ".join(_q(p) for p in paths) + "]"
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({listing}, union_by_name=true)")
    stats = [os.path.join(output, s, "stats", "*.json") for s in sources
             if glob.glob(os.path.join(output, s, "stats", "*.json"))]
    if stats:
        listing = "[" + ", ".join(_q(p) for p in stats) + "]"
        con.execute(f"CREATE VIEW stats AS SELECT * FROM read_json_auto({listing}, union_by_name=true, "
                    "maximum_object_size=67108864)")
        con.execute("CREATE VIEW step_stats AS SELECT source, input, key, s.name AS step, s.kind, s.seen, s.kept, "
                    "s.changed, s.seconds FROM (SELECT source, input, key, unnest(steps) AS s FROM stats)")
    for module in VIEW_MODULES:  # importing one registers its views
        importlib.import_module(module)
    for hook in _EXTRA_VIEWS:
        hook(con, output)
    return con


#: other packages (dedup, mixtures) register functions (con, output) that add their own views
_EXTRA_VIEWS: list[Any] = []
#: modules that call register_views when imported (query.connect imports them)
VIEW_MODULES: tuple[str, ...] = ("mixtures.views", "dedup.views")


def register_views(fn: Any) -> Any:
    _EXTRA_VIEWS.append(fn)
    return fn


def views(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]


def run_query(output: str, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(output)
    try:
        rel = con.execute(sql)
    except duckdb.CatalogException as exc:
        listing = ", ".join(views(con)) or "none (run a pipeline first)"
        raise SystemExit(f"{exc}\nviews under {output}: {listing}") from exc
    cols = [d[0] for d in rel.description]
    return cols, rel.fetchall()


def format_table(cols: list[str], rows: list[tuple], max_width: int = 60) -> str:
    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        s = s.replace("\n", "\\n")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
