"""The anneal stage's web math/code slice: selected by the domain classifier's scores (issue 18, part 3)."""

from __future__ import annotations

import dataclasses
import glob
import os

import pyarrow as pa
import pyarrow.parquet as pq

from classifiers.domains import DomainScore
from filters.extract import ExtractText
from mixtures.build import build_stage
from mixtures.spec import load_mixture
from tests.helpers.mixture_data import docs_table, write_docs
from tests.helpers.paths import FIXTURES

PAGES = os.path.join(FIXTURES, "domains")


def _scored_web(n_prose: int = 60, copies: int = 6) -> pa.Table:
    """Generated prose pages plus variants of the code tutorial and the math proof, scored by the shipped model."""
    prose = docs_table("commoncrawl", n_prose)
    html = [
        open(os.path.join(PAGES, f"{n}.html"), encoding="utf-8").read()
        for n in ("code_tutorial", "math_proof")
    ]
    extracted = ExtractText()(pa.table({"text": html, "content_format": ["html", "html"]})).table
    code, proof = extracted.column("text").to_pylist()
    extra = [f"{code}\n# variant {i}\nprint({i} * {i})" for i in range(copies)]
    extra += [f"{proof}\nExercise {i}. Show that ${i}^2 + {i}$ is even." for i in range(copies)]
    rows = prose.to_pylist()[: 2 * copies]
    more = [
        dict(r, id=f"commoncrawl/web/{i:05d}", text=t)
        for i, (r, t) in enumerate(zip(rows, extra, strict=True))
    ]
    table = pa.Table.from_pylist(prose.to_pylist() + more, schema=prose.schema)
    return DomainScore()(table).table


def test_anneal_selects_web_math_and_code_by_their_scores(tmp_path):
    out = str(tmp_path / "out")
    web = _scored_web()
    write_docs(out, "commoncrawl", web, "cc")
    write_docs(out, "github", docs_table("github", 80), "gh")
    spec = load_mixture("anneal")
    spec = dataclasses.replace(spec, decontaminate=None)  # the benchmarks are not what this test is about
    manifest = build_stage(spec, out)
    shards = pq.read_table(
        glob.glob(os.path.join(out, "mixtures", "anneal", "shards", "*.parquet"))
    ).to_pylist()
    domain = dict(zip(web.column("id").to_pylist(), web.column("domain").to_pylist(), strict=True))
    picked = {r["id"] for r in shards if r["mix_source"] == "web_math_code"}
    prose = {r["id"] for r in shards if r["mix_source"] == "commoncrawl"}
    assert picked and {domain[i] for i in picked} == {"code", "math"}
    assert prose and all(domain[i] == "prose" for i in prose)
    by = {s["name"]: s for s in manifest["sources"]}
    present = sum(v["target_share"] for v in by.values() if v["status"] != "missing")  # shares renormalised
    assert abs(by["web_math_code"]["realised_share"] - by["web_math_code"]["target_share"] / present) <= 0.01
    assert by["web_math_code"]["status"] == "ok" and by["web_math_code"]["realised_tokens"] > 0


def test_anneal_without_domain_columns_leaves_the_slice_empty(tmp_path):
    out = str(tmp_path / "out")
    write_docs(out, "commoncrawl", docs_table("commoncrawl", 60), "cc")  # curated before the domains step
    write_docs(out, "github", docs_table("github", 80), "gh")
    spec = dataclasses.replace(load_mixture("anneal"), decontaminate=None)
    manifest = build_stage(spec, out)
    by = {s["name"]: s for s in manifest["sources"]}
    assert by["web_math_code"]["realised_tokens"] == 0 and by["commoncrawl"]["realised_tokens"] > 0
