"""``winnow report`` (``make report``): ``OUTPUT/report/index.html`` with PNG plots of the whole output tree.

Per source: the funnel from read to kept and every drop reason (summary.json / stats); score histograms of kept
documents; dedup cluster sizes when a ``duplicates`` folder exists; per stage: target vs realised shares and the
decontamination table; the topic distribution of each source and stage (pipelines/report/topics.py).  Whatever
is absent is said so in the page, never an error.  OUTPUT may be local or on ``s3://`` / ``gs://``: every read
and the page's writes go through :mod:`pipelines.report.data`.
"""

from __future__ import annotations

import html
import logging
import tempfile
from typing import Any

import duckdb
import numpy as np

from pipelines.core.folder import Folder
from pipelines.report import data, plots
from pipelines.report.languages import languages_section
from pipelines.report.topics import topic_section

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("lang_score", "perplexity", "wikiref_prob", "quality_prob", "roberta_prob")
CLUSTER_COLUMNS = ("cluster", "cluster_id", "component", "component_id", "group", "group_id")
MAX_HIST_VALUES = 200_000


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def funnel_section(output: str, source: str, folder: str) -> str:
    if not data.exists(output, f"{source}/summary.json"):
        return f"<p>{source}: no summary.json (the run has not finished)</p>"
    summary = data.read_json(output, f"{source}/summary.json")
    steps = summary.get("steps") or {}
    order = list(steps)
    stats = data.listed(output, f"{source}/stats/*.json")
    if stats:  # summary.json sorts step names; a stats file keeps the recipe's order
        order = [s["name"] for s in data.read_json(output, stats[0]).get("steps", [])] or order
    stages = [("read", int(summary.get("read", 0)))]
    stages += [(f"after {n}", int(steps[n]["kept"])) for n in order if n in steps]
    corpus = list(summary.get("corpus_stages") or {})
    if corpus:  # dedup stages run after every input: the summary's kept is after them
        stages.append((f"after {' + '.join(corpus)}", int(summary.get("kept", 0))))
    png = plots.funnel(folder, source, stages)
    reasons = sorted((summary.get("rejected_by_reason") or {}).items(), key=lambda kv: -kv[1])
    return (
        f"<h3>{html.escape(source)}: read {summary.get('read', 0):,}, kept {summary.get('kept', 0):,}</h3>"
        f'<img src="{png}">' + _table(["drop reason", "documents"], [list(r) for r in reasons])
    )


def score_section(con: duckdb.DuckDBPyConnection, output: str, sources: list[str], folder: str) -> str:
    values: dict[str, dict[str, np.ndarray]] = {}
    for src in sources:
        docs = data.parquet_relation(con, output, f"{src}/docs/*.parquet")  # damaged files left out
        if not docs:
            continue
        cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {docs}").fetchall()}
        wanted = [c for c in cols if c in SCORE_COLUMNS or c.endswith("_prob")]
        for c in wanted:
            v = con.execute(
                f'SELECT "{c}"::DOUBLE FROM {docs} '
                f'WHERE "{c}" IS NOT NULL USING SAMPLE {MAX_HIST_VALUES} ROWS (reservoir, 1)'
            ).fetchall()
            if v:
                values.setdefault(c, {})[src] = np.array([x[0] for x in v], dtype=np.float64)
    if not values:
        return "<p>No score columns in the kept documents yet.</p>"
    return "".join(f'<img src="{plots.histogram(folder, c, per)}">' for c, per in sorted(values.items()))


def dedup_section(con: duckdb.DuckDBPyConnection, output: str, folder: str) -> str:
    dirs = duplicates_folders(output)
    if not dirs:
        return "<p>No dedup output (no duplicates folder under OUTPUT).</p>"
    parts = []
    for name in dirs:
        files = data.parquet_relation(con, output, f"{name}/**/*.parquet")
        if not files:
            parts.append(f"<p>{html.escape(name)}: no Parquet files</p>")
            continue
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {files}").fetchall()]
        key = next((c for c in CLUSTER_COLUMNS if c in cols), None)
        if key is None:
            parts.append(
                f"<p>{html.escape(name)}: no cluster column (columns: {html.escape(', '.join(cols))})</p>"
            )
            continue
        sizes = np.array(
            [r[0] for r in con.execute(f'SELECT count(*) FROM {files} GROUP BY "{key}"').fetchall()]
        )
        if not len(sizes):
            parts.append(f"<p>{html.escape(name)}: no duplicate clusters</p>")
            continue
        parts.append(f'<img src="{plots.cluster_sizes(folder, name, sizes)}">')
    return "".join(parts)


def duplicates_folders(output: str) -> list[str]:
    """``duplicates`` folders anywhere under OUTPUT (relative names), each holding at least one file."""
    found = set()
    for rel in data.relative(output, data.listed(output, "**/duplicates/**")):
        parts = rel.split("/")
        found.add("/".join(parts[: parts.index("duplicates") + 1]))
    return sorted(found)


def mixture_section(output: str, folder: str) -> str:
    manifests = data.manifests(output)
    if not manifests:
        return "<p>No stage mixtures yet (make mixture STAGE=core).</p>"
    parts = []
    for m in manifests:
        srcs = m["sources"]
        png = plots.shares(
            folder,
            m["stage"],
            [s["name"] for s in srcs],
            [s["effective_target_share"] for s in srcs],
            [s["realised_share"] for s in srcs],
        )
        parts.append(
            f"<h3>stage {html.escape(m['stage'])}: {m['realised_tokens']:,} tokens, seed {m['seed']}</h3>"
            f'<img src="{png}">'
            + _table(
                [
                    "source",
                    "status",
                    "target",
                    "effective target",
                    "realised",
                    "available tokens",
                    "tokens",
                    "epochs",
                    "documents",
                    "contaminated",
                ],
                [
                    [
                        s["name"],
                        s["status"],
                        s["target_share"],
                        s["effective_target_share"],
                        s["realised_share"],
                        s["available_tokens"],
                        s["realised_tokens"],
                        s["epochs"],
                        s["documents"],
                        s["contaminated_documents"],
                    ]
                    for s in srcs
                ],
            )
        )
        decon = data.decontamination_files(output, m)
        if not m["decontamination"].get("enabled"):
            parts.append(
                f"<p><b>WARNING</b>: {html.escape(m['decontamination'].get('warning', 'decontamination off'))}</p>"
            )
        elif decon:
            import pyarrow as pa

            from mixtures.store import read_table

            rows = pa.concat_tables([read_table(u) for u in decon], promote_options="permissive").to_pylist()
            parts.append(
                f"<p>decontamination: {len(rows)} document(s) removed</p>"
                + (
                    _table(
                        ["source", "id", "benchmark", "item", "matching n-gram", "hits"],
                        [
                            [r["mix_source"], r["id"], r["benchmark"], r["item"], r["ngram"], r["n_matches"]]
                            for r in rows[:500]
                        ],
                    )
                    if rows
                    else ""
                )
            )
    return "".join(parts)


CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}img{max-width:100%;display:block}"
)


def build_report(output: str) -> str:
    """Write ``OUTPUT/report/index.html`` (and its PNGs); returns the page's location (a path or a URI)."""
    output = data.location(output)
    if not Folder(output).isdir():
        raise FileNotFoundError(f"OUTPUT {output} does not exist: run `make pipeline SOURCE=...` first")
    with tempfile.TemporaryDirectory(prefix="winnow-report-") as drawn:
        page = render(output, drawn)
        with open(f"{drawn}/{data.PAGE}", "w", encoding="utf-8") as f:
            f.write(page)
        return data.publish(drawn, output)


def render(output: str, folder: str) -> str:
    """The page's HTML; its plots are drawn into the local ``folder``."""
    con = duckdb.connect()
    sources = data.sources(output)
    body = [
        f"<h1>Winnow report</h1><p>{html.escape(output)}: sources {html.escape(', '.join(sources) or 'none')}</p>",
        "<h2>Funnel: read → kept, by drop reason</h2>",
    ]
    body += [funnel_section(output, s, folder) for s in sources] or ["<p>No curated sources yet.</p>"]
    body += [
        "<h2>Languages: documents kept and rejected per language</h2>",
        languages_section(con, output, sources),
        "<h2>Score distributions</h2>",
        score_section(con, output, sources, folder),
        "<h2>Dedup cluster sizes</h2>",
        dedup_section(con, output, folder),
        "<h2>Stage mixtures</h2>",
        mixture_section(output, folder),
        "<h2>Topics</h2>",
        topic_section(con, output, sources, folder, _table),
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Winnow report</title><style>{CSS}</style>"
        f"</head><body>{''.join(body)}</body></html>"
    )
