"""Stage mixtures: shares, epochs, reproducibility, shortfalls, missing sources and predicates, token caches."""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from mixtures.build import build_stage
from mixtures.spec import MixtureError, load_mixture, parse_mixture
from mixtures.tokens import TokenCounter, ensure_token_counts, sidecar_path
from tests.helpers.cli import command
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture

mixture_main = command("mixture")

SHARES = {"commoncrawl": 0.5, "c4": 0.2, "books": 0.1, "wikipedia": 0.1, "github": 0.1}


def _sources(shares=SHARES, **override):
    out = {}
    for name, share in shares.items():
        entry = {"share": share, "max_epochs": 1.0}
        if name == "c4":
            entry.update(
                {"from": "commoncrawl", "where": "c4_reason IS NULL", "missing_columns": {"c4_reason": None}}
            )
        entry.update(override.get(name, {}))
        out[name] = entry
    return out


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """A curated OUTPUT: CC (c4 tagged), books, wikipedia, github; plenty of each."""
    out = str(tmp_path_factory.mktemp("curated"))
    cc = docs_table(
        "commoncrawl",
        600,
        extra={"c4_reason": [None if i % 3 else "c4:too_few_sentences" for i in range(600)]},
    )
    write_docs(out, "commoncrawl", cc.slice(0, 300), "cc-a")
    write_docs(out, "commoncrawl", cc.slice(300), "cc-b")
    write_docs(out, "books", docs_table("books", 120, max_sentences=80), "books")
    write_docs(out, "wikipedia", docs_table("wikipedia", 200), "wiki")
    write_docs(out, "github", docs_table("github", 300), "gh")
    return out


def _build(output, tmp_path, sources, **top):
    spec = load_mixture(path=write_mixture(str(tmp_path / "mix.yaml"), sources, **top))
    return build_stage(spec, output), os.path.join(output, "mixtures", spec.stage)


def _rows(stage_dir):
    return pq.read_table(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))).to_pylist()


def test_golden_mixture_shares_within_one_percent(curated, tmp_path):
    m, stage_dir = _build(curated, tmp_path, _sources(), total_tokens=30000)
    by = {s["name"]: s for s in m["sources"]}
    for name, share in SHARES.items():
        assert by[name]["status"] == "ok"
        assert abs(by[name]["realised_share"] - share) <= 0.01, (name, by[name])
    rows = _rows(stage_dir)
    tokens = collections.Counter()
    for r in rows:
        tokens[r["mix_source"]] += r["n_tokens"]
    assert {k: by[k]["realised_tokens"] for k in SHARES} == dict(tokens)
    assert sum(tokens.values()) == m["realised_tokens"] and len(rows) == m["documents"]
    # C4 is CommonCrawl documents that pass the C4 rules
    c4_ids = {r["id"] for r in rows if r["mix_source"] == "c4"}
    assert all(int(i.rsplit("/", 1)[1]) % 3 for i in c4_ids)
    # shuffled across sources, cut into shards of at most shard_max_tokens (one doc may exceed alone)
    assert len(m["shards"]) > 1 and all(s["tokens"] <= 5000 or s["documents"] == 1 for s in m["shards"])
    first = [r["mix_source"] for r in rows[:60]]
    assert len(set(first)) >= 4
    assert set(m["inputs"]["docs"]) == {
        os.path.relpath(p, curated) for p in glob.glob(os.path.join(curated, "*", "docs", "*.parquet"))
    }
    assert m["seed"] == 7 and m["inputs"]["mixture"]["sha256"]


def test_same_inputs_and_seed_give_identical_bytes(curated, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(curated, copy, ignore=shutil.ignore_patterns("mixtures"))
    _, a = _build(curated, tmp_path, _sources(), total_tokens=20000)
    digest = {
        os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(os.path.join(a, "*.parquet"))
    }
    _, b = _build(copy, tmp_path, _sources(), total_tokens=20000)
    assert digest == {
        os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(os.path.join(b, "*.parquet"))
    }
    _, c = _build(copy, tmp_path, _sources(), total_tokens=20000, seed=8)
    assert [r["id"] for r in _rows(a)] != [r["id"] for r in _rows(c)]


def test_epochs_repeat_documents_up_to_the_cap(curated, tmp_path):
    shares = {"books": 0.5, "wikipedia": 0.5}
    m, stage_dir = _build(
        curated, tmp_path, _sources(shares, books={"max_epochs": 2.5}, wikipedia={"max_epochs": 3})
    )
    books = next(s for s in m["sources"] if s["name"] == "books")
    # "max": books binds at 2.5 epochs, wikipedia takes the same number of tokens
    assert 2.45 <= books["epochs"] <= 2.5 and books["unique_documents"] == books["available_documents"]
    rows = [r for r in _rows(stage_dir) if r["mix_source"] == "books"]
    per_doc = collections.Counter(r["id"] for r in rows)
    assert set(per_doc.values()) <= {2, 3} and 3 in per_doc.values()
    assert {r["epoch"] for r in rows} == {0, 1, 2}
    assert len({(r["id"], r["epoch"]) for r in rows}) == len(rows)
    wiki = next(s for s in m["sources"] if s["name"] == "wikipedia")
    assert abs(wiki["realised_share"] - 0.5) <= 0.01 and 2 < wiki["epochs"] <= 3


def test_impossible_target_is_reported_with_what_is_achievable(curated, tmp_path):
    with pytest.raises(MixtureError, match=r"impossible.*largest budget at the target shares is [\d,]+") as e:
        _build(curated, tmp_path, _sources(), total_tokens=10**9)
    assert "books" in str(e.value) and "achievable" in str(e.value)
    m, _ = _build(curated, tmp_path, _sources(), total_tokens=10**9, on_shortfall="scale")
    assert m["total_tokens_budget"] == m["max_budget_at_target_shares"] < 10**9
    assert all(abs(s["realised_share"] - SHARES[s["name"]]) <= 0.01 for s in m["sources"])
    m, _ = _build(curated, tmp_path, _sources(), total_tokens=500_000, on_shortfall="take_available")
    short = [s for s in m["sources"] if s["status"] == "short"]
    assert short and all(s["shortfall_tokens"] > 0 and s["epochs"] <= 1.0 for s in short)


def test_missing_source_is_reported_and_its_share_renormalised(curated, tmp_path, capsys):
    shares = {"commoncrawl": 0.6, "stackexchange": 0.2, "wikipedia": 0.2}
    m, _ = _build(curated, tmp_path, _sources(shares), total_tokens=10000)
    se = next(s for s in m["sources"] if s["name"] == "stackexchange")
    assert se["status"] == "missing" and "stackexchange/docs" in se["note"] and se["realised_tokens"] == 0
    cc = next(s for s in m["sources"] if s["name"] == "commoncrawl")
    assert cc["effective_target_share"] == pytest.approx(0.75) and abs(cc["realised_share"] - 0.75) <= 0.01
    with pytest.raises(MixtureError, match="stackexchange"):
        _build(curated, tmp_path, _sources(shares), missing_sources="error")
    # the CLI says so in words and exits non-zero on a mixture that cannot be built
    path = write_mixture(str(tmp_path / "bad.yaml"), _sources(shares), missing_sources="error")
    assert mixture_main(["--mixture", path, "--output", curated]) == 2
    assert "stackexchange" in capsys.readouterr().err


def test_predicate_on_a_column_the_source_lacks_is_a_clear_error(curated, tmp_path):
    shares = {"commoncrawl": 0.5, "books": 0.5}
    with pytest.raises(MixtureError, match=r"(?s)books.*quality_prob.*columns of books: .*perplexity"):
        _build(curated, tmp_path, _sources(shares, books={"where": "quality_prob > 0.5"}))
    # the same predicate with a declared fallback value for that column works
    m, _ = _build(
        curated,
        tmp_path,
        _sources(
            shares,
            books={"where": "coalesce(quality_prob, 1) > 0.5", "missing_columns": {"quality_prob": None}},
        ),
    )
    assert next(s for s in m["sources"] if s["name"] == "books")["status"] == "ok"


def test_predicates_ranking_and_c4_in_drop_mode(curated, tmp_path):
    out = str(tmp_path / "out")
    write_docs(out, "commoncrawl", docs_table("commoncrawl", 200))  # c4 ran with mode: drop, no c4_reason
    m, stage_dir = _build(out, tmp_path, _sources({"commoncrawl": 0.5, "c4": 0.5}))
    c4 = next(s for s in m["sources"] if s["name"] == "c4")
    assert c4["candidate_documents"] == 200
    # a ranked slice: the top 25% by lang_score, and a token-length predicate
    src = {
        "commoncrawl": {
            "share": 1.0,
            "rank_by": ["quality_prob", "lang_score"],
            "top_fraction": 0.25,
            "where": "n_tokens >= 40",
        }
    }
    m, stage_dir = _build(out, tmp_path, src)
    entry = m["sources"][0]
    table = pq.read_table(glob.glob(os.path.join(out, "commoncrawl", "docs", "*.parquet"))[0]).to_pylist()
    counts = {
        r["id"]: r["n_tokens"]
        for r in pq.read_table(
            glob.glob(os.path.join(out, "commoncrawl", "tokens", "*.parquet"))[0]
        ).to_pylist()
    }
    eligible = sorted((r for r in table if counts[r["id"]] >= 40), key=lambda r: (-r["lang_score"], r["id"]))
    expected = {r["id"] for r in eligible[: -(-len(eligible) // 4)]}
    assert entry["ranked_by"] == "lang_score" and {r["id"] for r in _rows(stage_dir)} == expected


def test_token_counts_match_llama3_and_are_cached_by_id_and_text(tmp_path):
    import quicktok

    out = str(tmp_path / "out")
    path = write_docs(out, "wikipedia", docs_table("wikipedia", 50))
    counter = TokenCounter("llama3")
    side, counted = ensure_token_counts(path, counter)
    assert counted == 50 and side == sidecar_path(path)
    enc = quicktok.get_encoding("llama3")
    docs = pq.read_table(path).to_pylist()
    got = dict(zip(*pq.read_table(side, columns=["id", "n_tokens"]).to_pydict().values(), strict=True))
    assert all(got[d["id"]] == len(enc.encode(d["text"])) for d in docs)
    assert ensure_token_counts(path, counter)[1] == 0  # reused
    table = pq.read_table(path)
    texts = table.column("text").to_pylist()
    texts[3] = texts[3] + " An edited sentence."
    pq.write_table(
        table.set_column(3, "text", __import__("pyarrow").array(texts, type=table.schema.field(3).type)), path
    )
    assert ensure_token_counts(path, counter)[1] == 1  # only the changed document is recounted
    assert ensure_token_counts(path, TokenCounter("cl100k_base"))[1] == 50  # another tokenizer: new counts


def test_mixture_file_errors_name_the_key_to_fix():
    with pytest.raises(MixtureError, match="sum to 0.9"):
        parse_mixture({"sources": {"a": {"share": 0.5}, "b": {"share": 0.4}}})
    with pytest.raises(MixtureError, match="on_shortfall"):
        parse_mixture({"sources": {"a": 1.0}, "on_shortfall": "maybe"})
    with pytest.raises(MixtureError, match="unknown stage"):
        load_mixture("pretrain")
    for stage in ("core", "anneal", "long_context"):
        spec = load_mixture(stage)
        assert spec.stage == stage and spec.decontaminate and spec.decontaminate.n == 13
    core = {s.name: s.share for s in load_mixture("core").sources}
    assert core == {
        "commoncrawl": 0.67,
        "c4": 0.15,
        "github": 0.045,
        "wikipedia": 0.045,
        "books": 0.045,
        "arxiv": 0.025,
        "stackexchange": 0.02,
    }


def test_manifest_is_json_and_query_views_see_the_stage(curated, tmp_path):
    from pipelines.query import run_query

    _build(curated, tmp_path, _sources(), total_tokens=15000, stage="viewtest")
    m = json.load(open(os.path.join(curated, "mixtures", "viewtest", "manifest.json")))
    cols, rows = run_query(
        curated,
        "SELECT source, realised_tokens FROM mixture_sources WHERE stage = 'viewtest' ORDER BY source",
    )
    assert dict(rows) == {s["name"]: s["realised_tokens"] for s in m["sources"]}
    _, rows = run_query(
        curated, "SELECT mix_source, sum(n_tokens) FROM mixture_docs WHERE stage = 'viewtest' GROUP BY 1"
    )
    assert dict(rows) == {s["name"]: s["realised_tokens"] for s in m["sources"]}
    _, rows = run_query(curated, "SELECT source, count(*) FROM token_counts GROUP BY 1 ORDER BY 1")
    assert dict(rows) == {"books": 120, "commoncrawl": 600, "github": 300, "wikipedia": 200}


def test_stage_that_selects_nothing_is_empty_not_failed_unless_strict(tmp_path, capsys):
    out = str(tmp_path / "out")
    write_docs(out, "books", docs_table("books", 30), "books")
    write_docs(out, "github", docs_table("github", 30), "gh")
    # a first build of a mixture that selects documents, then the same stage made empty (a stricter predicate)
    path = write_mixture(
        str(tmp_path / "long.yaml"), {"books": {"share": 0.5}, "github": {"share": 0.5}}, stage="long"
    )
    assert mixture_main(["--output", out, "--mixture", path]) == 0
    assert glob.glob(os.path.join(out, "mixtures", "long", "shards", "*.parquet"))
    capsys.readouterr()
    write_mixture(
        str(tmp_path / "long.yaml"),
        {
            "books": {"share": 0.5, "where": "n_tokens >= 8192"},
            "github": {"share": 0.5, "where": "n_tokens >= 8192"},
        },
        stage="long",
    )
    assert mixture_main(["--output", out, "--mixture", path]) == 0
    said = capsys.readouterr().out
    assert said.startswith(
        "mixture long: empty: no curated document satisfies its selection (books: the predicate"
    )
    assert "nothing written" in said
    assert not os.path.exists(os.path.join(out, "mixtures", "long"))  # the earlier build no longer applies
    assert mixture_main(["--output", out, "--mixture", path, "--strict"]) == 2
    assert "mixture long: empty" in capsys.readouterr().err
    # the shipped long_context stage on these short documents: empty, exit 0
    assert mixture_main(["--output", out, "--stage", "long_context"]) == 0
    assert "mixture long_context: empty" in capsys.readouterr().out
    # no curated output at all is an error that says what to run, not "empty"
    empty_out = str(tmp_path / "nothing")
    os.makedirs(empty_out)
    assert mixture_main(["--output", empty_out, "--stage", "core"]) == 2
    assert "none of its sources has documents under OUTPUT" in capsys.readouterr().err
