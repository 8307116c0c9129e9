"""Line-level dedup: normalisation, two-pass counts (CCNet / Llama-3 buckets), one-pass mode, emptied docs."""

from __future__ import annotations

import os
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from dedup.lines import LineDedup, bucket_of, count_lines, line_hash
from dedup.text import normalize_line
from pipelines.core.schema import CORE_SCHEMA, table_from_rows

NAV = "Home | About Us | Contact © 2024"
COOKIE = "We use cookies to improve your experience. Accept?"


def _docs(n: int) -> list[dict]:
    topics = [
        "bus routes",
        "bike lanes",
        "school budgets",
        "park benches",
        "street lights",
        "library hours",
        "water mains",
        "tram stops",
        "market stalls",
        "bridge repairs",
        "ferry times",
        "snow ploughs",
    ]
    rows = []
    for i in range(n):
        body = f"Article {i}: the council approved new {topics[i]} for the eastern district."
        rows.append({"id": f"doc-{i}", "source": "commoncrawl", "text": f"{NAV}\n{body}\n{COOKIE}"})
    rows.append({"id": "doc-nav-only", "source": "commoncrawl", "text": f"{NAV}\n{COOKIE}"})
    return rows


def test_normalize_line_ccnet_rules():
    assert normalize_line("  Café — 2024 Édition!! ") == "cafe 0 edition"
    assert line_hash("Home | About Us | Contact © 2023") == line_hash("home about us contact © 2024")
    assert line_hash("   ...   ") is None


def test_two_pass_counts_remove_repeated_lines(tmp_path):
    rows = _docs(10)
    folder = tmp_path / "docs"
    folder.mkdir()
    pq.write_table(table_from_rows(rows[:5], CORE_SCHEMA), folder / "a.parquet")
    pq.write_table(table_from_rows(rows[5:], CORE_SCHEMA), folder / "b.parquet")
    counts = tmp_path / "counts"
    meta = count_lines([str(folder)], str(counts), partitions=4)
    assert meta["buckets"] == 1 and meta["docs"] == 11
    assert (
        len([n for n in os.listdir(counts) if n.startswith("counts-")]) == 4
    )  # hash-partitioned, not one dict
    step = LineDedup(max_count=1, counts_dir=str(counts))  # CCNet: every repeated line goes
    res = step(table_from_rows(rows, CORE_SCHEMA))
    out = res.table.column("text").to_pylist()
    assert out[0] == "Article 0: the council approved new bus routes for the eastern district."
    assert res.reasons[-1] == "line_dedup:empty" and res.reasons[:-1] == [None] * 10
    assert res.changed == 11
    # Llama-3 style: more than 6 per bucket (buckets by hash of id): only docs of a bucket holding 7+ copies change
    meta = count_lines([str(folder)], str(tmp_path / "c2"), bucket_docs=3, partitions=2)
    assert meta["buckets"] == 4
    res = LineDedup(max_count=6, counts_dir=str(tmp_path / "c2"))(table_from_rows(rows, CORE_SCHEMA))
    per_bucket = Counter(bucket_of(r["id"], 4) for r in rows)
    expected = [per_bucket[bucket_of(r["id"], 4)] > 6 for r in rows]
    assert [NAV not in t for t in res.table.column("text").to_pylist()] == expected
    assert 0 < sum(expected) < len(rows)


def test_one_pass_mode_keeps_first_copies():
    rows = _docs(9)
    res = LineDedup(max_count=6, counts_dir=None)(table_from_rows(rows, CORE_SCHEMA))
    texts = res.table.column("text").to_pylist()
    assert all(NAV in t for t in texts[:6]) and not any(NAV in t for t in texts[6:9])
    assert res.changed == 4 and res.reasons[-1] == "line_dedup:empty"


def test_missing_counts_dir_tells_what_to_run(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="winnow dedup lines"):
        LineDedup(counts_dir=str(tmp_path / "none"))(table_from_rows(_docs(1), CORE_SCHEMA))


def test_line_dedup_in_commoncrawl_recipe_is_between_extract_and_lid():
    from pipelines.sources.commoncrawl import build_recipe
    from pipelines.sources.registry import load_config

    recipe = build_recipe(load_config("commoncrawl"))
    names = [s.name for s in recipe.steps]
    assert names.index("extract") + 1 == names.index("line_dedup") == names.index("lid") - 1
    assert [s.name for s in recipe.corpus_stages] == ["minhash"]
    assert pa.types.is_large_string(recipe.schema().field("text").type)
