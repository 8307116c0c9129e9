"""The ``languages`` table of the report: documents kept and rejected per language per source, with the top reasons.

A document's language is its ``lang`` column (the LID step's); documents rejected before LID (URL block lists,
extraction) have none and are counted as ``(before LID)``.  Sources without a ``lang`` column get no table.
"""

from __future__ import annotations

import html
from typing import Any

import duckdb

from pipelines.report.data import parquet_relation

NO_LANG = "(before LID)"


def _has_lang(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    cols = con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
    return any(c[0] == "lang" for c in cols)


def language_counts(
    con: duckdb.DuckDBPyConnection, output: str, source: str, top_reasons: int = 3
) -> list[dict[str, Any]]:
    """Per language of ``source``: ``{lang, kept, rejected, reasons: [(reason, n)...]}``, most documents first."""
    rows: dict[str, dict[str, Any]] = {}
    for kind in ("docs", "rejected"):
        table = parquet_relation(con, output, f"{source}/{kind}/*.parquet")
        if not table or not _has_lang(con, table):
            continue
        for lang, n in con.execute(f"SELECT lang, count(*) FROM {table} GROUP BY lang").fetchall():
            row = rows.setdefault(
                lang or NO_LANG, {"lang": lang or NO_LANG, "kept": 0, "rejected": 0, "reasons": []}
            )
            row["kept" if kind == "docs" else "rejected"] += int(n)
        if kind == "rejected":
            ranked = con.execute(
                f"SELECT lang, reason, n FROM (SELECT lang, reason, count(*) AS n, row_number() OVER "
                f"(PARTITION BY lang ORDER BY count(*) DESC, reason) AS r FROM {table} GROUP BY lang, reason) "
                f"WHERE r <= {int(top_reasons)} ORDER BY lang, n DESC, reason"
            ).fetchall()
            for lang, reason, n in ranked:
                rows[lang or NO_LANG]["reasons"].append((reason, int(n)))
    return sorted(rows.values(), key=lambda r: (-(r["kept"] + r["rejected"]), r["lang"]))


def languages_section(con: duckdb.DuckDBPyConnection, output: str, sources: list[str]) -> str:
    """HTML: one table per source that has a ``lang`` column."""
    parts = []
    for source in sources:
        rows = language_counts(con, output, source)
        if not rows:
            continue
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    r["lang"],
                    f"{r['kept']:,}",
                    f"{r['rejected']:,}",
                    ", ".join(f"{reason} ({n:,})" for reason, n in r["reasons"]),
                )
            )
            + "</tr>"
            for r in rows
        )
        parts.append(
            f"<h3>{html.escape(source)}: {len(rows)} language(s)</h3><table><tr><th>language</th><th>kept</th>"
            f"<th>rejected</th><th>top rejection reasons</th></tr>{body}</table>"
        )
    return "".join(parts) or "<p>No source has a <code>lang</code> column.</p>"
