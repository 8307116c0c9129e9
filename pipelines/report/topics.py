"""The report's topic section: what each curated source and each stage mixture is about.

Per source, the share of kept documents per ``topic`` (sources without the column say so); per stage, each entry's
realised share of tokens per topic from the manifest, beside its target when the entry has topic rules.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import duckdb

from classifiers.topics import TOPICS
from mixtures.topics import NO_TOPIC
from pipelines.core.sql import quote
from pipelines.report import plots
from pipelines.report.data import manifests, parquet_relation

TOPIC = "topic"
#: the taxonomy's order fixes each topic's colour in the plots; documents without a topic last
ORDER = [*TOPICS, NO_TOPIC]


def source_topics(
    con: duckdb.DuckDBPyConnection, output: str, sources: list[str]
) -> dict[str, dict[str, int]]:
    """source -> topic -> kept documents, for the sources whose docs have a topic column."""
    out: dict[str, dict[str, int]] = {}
    for src in sources:
        read = parquet_relation(con, output, f"{src}/docs/*.parquet")
        if not read:
            continue
        if TOPIC not in {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()}:
            continue
        rows = con.execute(
            f"SELECT coalesce({TOPIC}, {quote(NO_TOPIC)}), count(*) FROM {read} GROUP BY 1"
        ).fetchall()
        out[src] = {t: int(n) for t, n in rows}
    return out


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {t: n / total for t, n in counts.items()}


def topic_section(
    con: duckdb.DuckDBPyConnection, output: str, sources: list[str], folder: str, table: Callable[..., str]
) -> str:
    """The HTML of the section (``table``: the report's HTML table writer)."""
    parts: list[str] = []
    per_source = source_topics(con, output, sources)
    lacking = [s for s in sources if s not in per_source]
    if per_source:
        rows = {s: _shares(c) for s, c in per_source.items()}
        parts.append(
            f'<img src="{plots.topic_bars(folder, "sources", "kept documents by topic", rows, ORDER)}">'
        )
        topics = sorted({t for c in per_source.values() for t in c})
        parts.append(
            table(
                ["source", "documents", *topics],
                [
                    [s, sum(c.values()), *[round(rows[s].get(t, 0.0), 4) for t in topics]]
                    for s, c in per_source.items()
                ],
            )
        )
    parts.append(
        f"<p>No topic column (topic shares do not apply): {html.escape(', '.join(lacking))}</p>"
        if lacking
        else ""
    )
    for manifest in manifests(output):
        parts.append(stage_topics(manifest, folder, table))
    return "".join(parts) or "<p>No topic column in any source yet.</p>"


def stage_topics(manifest: dict[str, Any], folder: str, table: Callable[..., str]) -> str:
    """A stage's entries by topic: realised token shares (plot), and target vs realised per topic (table)."""
    stage = manifest["stage"]
    entries = [s for s in manifest["sources"] if s.get("topics")]
    if not entries:
        return f"<p>stage {html.escape(stage)}: no entry has a topic column.</p>"
    rows = {s["name"]: {t: v["realised"] for t, v in s["topics"].items()} for s in entries}
    png = plots.topic_bars(folder, stage, f"stage {stage}: realised tokens by topic", rows, ORDER)
    notes = [f"{s['name']}: {s['topics_note']}" for s in manifest["sources"] if s.get("topics_note")]
    return (
        f'<h3>stage {html.escape(stage)}</h3><img src="{png}">'
        + table(
            ["entry", "topic", "rule", "available", "target", "realised", "tokens"],
            [
                [
                    s["name"],
                    t,
                    json.dumps(v["rule"]) if v["rule"] else "",
                    v["available"],
                    v["target"],
                    v["realised"],
                    v["realised_tokens"],
                ]
                for s in entries
                for t, v in s["topics"].items()
            ],
        )
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    )
