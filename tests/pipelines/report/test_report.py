"""The HTML report renders from an output tree with funnels, score histograms, dedup clusters and stage shares."""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from mixtures.build import build_stage
from mixtures.spec import load_mixture
from pipelines.report.build import build_report
from tests.helpers.cli import command
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture

report_main = command("report")


def _summary(output: str, source: str) -> None:
    steps = [
        {"name": "extract", "kind": "transform", "seen": 100, "kept": 90},
        {"name": "lid", "kind": "score", "seen": 90, "kept": 90},
        {"name": "lang_filter", "kind": "filter", "seen": 90, "kept": 70},
    ]
    os.makedirs(os.path.join(output, source, "stats"), exist_ok=True)
    json.dump({"source": source, "steps": steps}, open(os.path.join(output, source, "stats", "k.json"), "w"))
    summary = {
        "source": source,
        "read": 100,
        "kept": 70,
        "rejected": 30,
        "rejected_by_reason": {"extract:no_text": 10, "lang:not_en": 20},
        "steps": {s["name"]: s for s in sorted(steps, key=lambda s: s["name"])},
    }
    json.dump(summary, open(os.path.join(output, source, "summary.json"), "w"))


def test_report_renders_every_section(tmp_path, capsys):
    out = str(tmp_path / "out")
    write_docs(
        out, "commoncrawl", docs_table("commoncrawl", 70, extra={"quality_prob": [i / 70 for i in range(70)]})
    )
    write_docs(out, "books", docs_table("books", 20))
    _summary(out, "commoncrawl")
    dup = os.path.join(out, "commoncrawl", "duplicates")
    os.makedirs(dup)
    pq.write_table(
        pa.table({"id": ["a", "b", "c", "d", "e"], "cluster_id": ["a", "a", "a", "d", "d"]}),
        os.path.join(dup, "part-0.parquet"),
    )
    path = write_mixture(
        str(tmp_path / "m.yaml"), {"commoncrawl": {"share": 0.7}, "books": {"share": 0.3}}, stage="core"
    )
    build_stage(load_mixture(path=path), out)
    page_path = build_report(out)
    page = open(page_path, encoding="utf-8").read()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {
        "funnel_commoncrawl.png",
        "hist_lang_score.png",
        "hist_perplexity.png",
        "hist_quality_prob.png",
        "dedup_commoncrawl_duplicates.png",
        "shares_core.png",
    } <= set(images)
    for img in images:
        with open(os.path.join(out, "report", img), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "lang:not_en" in page and "<td>20</td>" in page  # drop reasons with counts
    assert "books: no summary.json" in page  # a source without a finished run is said so
    assert "stage core" in page and "decontamination" not in page.split("stage core")[0]
    assert report_main(["--output", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
