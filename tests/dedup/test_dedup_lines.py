"""Line-level dedup: the two normalisations against their references, the step's two modes, the recipe wiring."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.line_stage import LineDedupConfig, count_lines
from dedup.lines import LineDedup, bucket_of, ccnet_normalize, line_hash, normalizer, sorted_contains
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


# Expected values are CCNet's cc_net/text_normalizer.py::normalize_for_dedup (facebookresearch/cc_net, commit
# bda555b) run on these lines: digits (also full-width) → 0, CJK/typographic punctuation and control characters
# deleted, ASCII punctuation, accents and inner spaces kept.
CCNET_CASES = [
    ("  Café — 2024 Édition!! ", "café  0000 édition!!"),
    ("Price：１００％", "price000"),
    ("Tab\there\x07 end", "tabhere end"),
    ("   ", ""),
    ("Home | About Us | Contact © 2024", "home | about us | contact © 0000"),
    ("《三体》第２部，刘慈欣。", "三体第0部刘慈欣"),
    ("It’s “quoted” … (ok)", "its quoted  (ok)"),
    ("ÀÉÎ naïve 3.14", "àéî naïve 0.00"),
    ("\x85Next line\x9f", "next line"),
]


@pytest.mark.parametrize(("line", "expected"), CCNET_CASES)
def test_ccnet_normalization_matches_ccnet(line, expected):
    assert ccnet_normalize(line) == expected


def _web_lines() -> list[str]:
    """Lines as extracted web pages have them: navigation, footers, dates, prices, quotes, accents, CJK."""
    return [
        NAV,
        "HOME | ABOUT US | CONTACT © 2023",
        "Home About Us Contact (c) 2024",
        COOKIE,
        "Posted on 12 March 2021 by Ana Sánchez",
        "Share on Facebook • Tweet • Pin it",
        "« Previous post | Next post »",
        "Price: €1,299.00 (incl. VAT) — free shipping!",
        "It’s a well-known fact — “quotes” and (brackets) [too] are punctuation.",
        "Résumé des élèves: naïve café crème, 3½ cups…",
        "《三体》第２部，刘慈欣。",
        "\tIndented\tline with tabs   and  spaces ",
        "",
        "   ",
        "1.",
    ]


def test_datatrove_normalization_is_datatrove_simplify_text():
    from datatrove.utils.text import simplify_text

    for line in _web_lines():
        assert normalizer("datatrove")(line) == simplify_text(line)


@pytest.mark.integration
def test_datatrove_normalization_agrees_on_real_lines():
    from datatrove.utils.text import simplify_text

    from dedup.evalset import real_paragraphs
    from tests.helpers.paths import CORPUS, corpus_path

    corpus_path("wikipedia")
    lines = [x for p in real_paragraphs(CORPUS)[::50] for x in p.split("\n")]
    assert len(lines) > 100
    for line in lines:
        assert normalizer("datatrove")(line) == simplify_text(line)


def test_normalizations_differ_where_documented():
    # datatrove merges punctuation variants of a navigation line, CCNet keeps ASCII punctuation apart
    assert line_hash(NAV, "datatrove") == line_hash("home about us contact © 2023", "datatrove")
    assert line_hash(NAV, "ccnet") == line_hash("HOME | ABOUT US | CONTACT © 2023", "ccnet")
    assert line_hash(NAV, "ccnet") != line_hash("Home About Us Contact © 2024", "ccnet")
    assert line_hash("   ...   ", "datatrove") is None and line_hash("   ", "ccnet") is None
    with pytest.raises(ValueError, match="normalization"):
        normalizer("nfkc")


def test_sorted_contains_is_isin():
    rng = np.random.default_rng(0)
    frequent = np.unique(rng.integers(0, 2**63, 5000, dtype=np.uint64))
    keys = np.concatenate(
        [frequent[::7], rng.integers(0, 2**63, 3000, dtype=np.uint64), [np.uint64(2**64 - 1)]]
    )
    assert (sorted_contains(frequent, keys) == np.isin(keys, frequent)).all()
    assert not sorted_contains(np.zeros(0, np.uint64), keys).any()


def test_counts_mode_drops_every_copy_per_bucket(tmp_path):
    import pyarrow.parquet as pq

    from dedup.corpus import build_inputs

    rows = _docs(10)
    folder = tmp_path / "docs"
    folder.mkdir()
    pq.write_table(table_from_rows(rows[:5], CORE_SCHEMA), folder / "a.parquet")
    pq.write_table(table_from_rows(rows[5:], CORE_SCHEMA), folder / "b.parquet")
    files = build_inputs([str(folder)])
    meta = count_lines(files, str(tmp_path / "c1"), LineDedupConfig(bucket_docs=0, partitions=4), hits=False)
    assert meta["buckets"] == 1 and meta["docs"] == 11 and meta["partitions"] == 4
    res = LineDedup(max_count=1, mode="counts", counts_dir=str(tmp_path / "c1"))(
        table_from_rows(rows, CORE_SCHEMA)
    )
    out = res.table.column("text").to_pylist()
    assert out[0] == "Article 0: the council approved new bus routes for the eastern district."
    assert res.reasons[-1] == "line_dedup:empty" and res.reasons[:-1] == [None] * 10
    assert res.changed == 11
    # LLaMA-3 style: more than 6 per bucket (buckets by hash of id): only docs of a bucket holding 7+ copies change
    cfg = LineDedupConfig(bucket_docs=3, partitions=2)
    assert count_lines(files, str(tmp_path / "c2"), cfg, hits=False)["buckets"] == 4
    res = LineDedup(max_count=6, mode="counts", counts_dir=str(tmp_path / "c2"))(
        table_from_rows(rows, CORE_SCHEMA)
    )
    per_bucket = {b: sum(bucket_of(r["id"], 4) == b for r in rows) for b in range(4)}
    expected = [per_bucket[bucket_of(r["id"], 4)] > 6 for r in rows]
    assert [NAV not in t for t in res.table.column("text").to_pylist()] == expected
    assert 0 < sum(expected) < len(rows)
    with pytest.raises(ValueError, match="other settings"):  # a counts folder is not silently reused
        count_lines(files, str(tmp_path / "c2"), LineDedupConfig(bucket_docs=5), hits=False)
    with pytest.raises(ValueError, match="normalization"):
        LineDedup(mode="counts", counts_dir=str(tmp_path / "c2"), normalization="datatrove")(
            table_from_rows(rows, CORE_SCHEMA)
        )


def test_per_input_approx_counts_restart_at_each_input():
    rows = _docs(9)
    step = LineDedup(max_count=6, mode="per_input_approx")
    res = step(table_from_rows(rows, CORE_SCHEMA))
    texts = res.table.column("text").to_pylist()
    assert all(NAV in t for t in texts[:6]) and not any(NAV in t for t in texts[6:9])
    assert res.changed == 4 and res.reasons[-1] == "line_dedup:empty"
    step.start_input("next.warc.gz")  # a new input: the first 6 copies stay again
    again = step(table_from_rows(rows[:6], CORE_SCHEMA))
    assert again.changed == 0


def test_mode_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="counts_dir"):
        LineDedup(mode="counts")
    with pytest.raises(ValueError, match="mode"):
        LineDedup(mode="two_pass")
    with pytest.raises(FileNotFoundError, match="winnow dedup lines"):
        LineDedup(mode="counts", counts_dir=str(tmp_path / "none"))(table_from_rows(_docs(1), CORE_SCHEMA))


def test_commoncrawl_recipe_runs_line_dedup_as_corpus_stage_after_minhash():
    from pipelines.sources.commoncrawl import build_recipe
    from pipelines.sources.registry import load_config

    config = load_config("commoncrawl")
    recipe = build_recipe(config)
    assert "line_dedup" not in [s.name for s in recipe.steps]  # the per-input approximation is off by default
    assert [s.name for s in recipe.corpus_stages] == ["unique_ids", "url_dedup", "minhash", "line_dedup"]
    assert recipe.corpus_stages[3].config() == LineDedupConfig(executor="auto", workers=2)
    on = build_recipe({**config, "steps": {**config["steps"], "line_dedup": {"mode": "per_input_approx"}}})
    names = [s.name for s in on.steps]
    # CCNet's place: after extraction (and the domain scores read from the extracted text), right before LID
    assert names.index("extract") < names.index("line_dedup") == names.index("lid") - 1
    assert pa.types.is_large_string(recipe.schema().field("text").type)


def test_cli_counts_feed_the_counts_mode_step(tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    from tests.helpers.cli import command

    dedup_main = command("dedup")

    rows = _docs(10)
    folder = tmp_path / "docs"
    folder.mkdir()
    pq.write_table(table_from_rows(rows[:4], CORE_SCHEMA), folder / "a.parquet")
    pq.write_table(table_from_rows(rows[4:], CORE_SCHEMA), folder / "b.parquet")
    counts = str(tmp_path / "counts")
    argv = ["lines", "--input", str(folder), "--counts", counts, "--bucket-docs", "0", "--executor", "local"]
    assert dedup_main(argv) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["docs"] == 11 and meta["buckets"] == 1 and meta["normalization"] == "ccnet"
    res = LineDedup(max_count=6, mode="counts", counts_dir=counts)(table_from_rows(rows, CORE_SCHEMA))
    assert not any(NAV in t for t in res.table.column("text").to_pylist())  # 11 copies > 6, across both files
    assert dedup_main([*argv[:-4], "--bucket-docs", "5"]) == 2  # same folder, other settings: refused
    assert "other settings" in capsys.readouterr().err
