"""Topic-aware mixtures: per-topic shares, caps and down-weights inside a source entry (mixtures/topics.py)."""

from __future__ import annotations

import collections
import glob
import os

import pyarrow.parquet as pq
import pytest

from mixtures.spec import MixtureError
from tests.helpers.topic_data import DOCS, build_topic_stage, write_topic_corpus


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_topic_corpus(str(tmp_path_factory.mktemp("topics")))


def _shard_topic_tokens(output, stage_dir):
    """Tokens per topic of the commoncrawl rows actually written to the shards."""
    topic = dict(
        zip(
            *pq.read_table(os.path.join(output, "commoncrawl", "docs"), columns=["id", "topic"])
            .to_pydict()
            .values(),
            strict=True,
        )
    )
    rows = pq.read_table(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))).to_pylist()
    tokens = collections.Counter()
    for r in rows:
        if r["mix_source"] == "commoncrawl":
            tokens[topic[r["id"]]] += r["n_tokens"]
    return tokens


def _available_share(output):
    """Each topic's share of the candidate tokens (from the token sidecars the build wrote)."""
    from mixtures.tokens import sidecar_path

    docs = pq.read_table(os.path.join(output, "commoncrawl", "docs"), columns=["id", "topic"]).to_pylist()
    counts = {}
    for path in glob.glob(os.path.join(output, "commoncrawl", "docs", "*.parquet")):
        counts |= dict(
            zip(
                *pq.read_table(sidecar_path(path), columns=["id", "n_tokens"]).to_pydict().values(),
                strict=True,
            )
        )
    per = collections.Counter()
    for d in docs:
        per[d["topic"]] += counts[d["id"]]
    total = sum(per.values())
    return {t: v / total for t, v in per.items()}


def test_a_capped_topic_meets_its_cap_and_the_others_keep_their_proportions(curated, tmp_path):
    m, stage_dir = build_topic_stage(
        curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens=40000
    )
    cc = next(s for s in m["sources"] if s["name"] == "commoncrawl")
    natural = _available_share(curated)
    assert natural["arts_entertainment"] > 0.3  # the cap binds: arts is over-represented in the candidates
    assert cc["topics_applied"] is True
    shares = cc["topics"]
    assert shares["arts_entertainment"]["target"] == pytest.approx(0.08)
    assert shares["arts_entertainment"]["rule"] == {"max_share": 0.08}
    rest = 1 - natural["arts_entertainment"]
    tokens = _shard_topic_tokens(curated, stage_dir)
    total = sum(tokens.values())
    for topic in DOCS:
        expected = 0.08 if topic == "arts_entertainment" else 0.92 * natural[topic] / rest
        assert shares[topic]["target"] == pytest.approx(expected, abs=1e-6)
        # realised within 1% of the target, in tokens, as the manifest says and as the shards hold
        assert abs(shares[topic]["realised"] - expected) <= 0.01, (topic, shares[topic])
        assert shares[topic]["realised_tokens"] == tokens[topic]
        assert abs(tokens[topic] / total - expected) <= 0.01
        assert shares[topic]["available"] == pytest.approx(natural[topic], abs=1e-6)
    assert abs(cc["realised_share"] - 0.8) <= 0.01
    books = next(s for s in m["sources"] if s["name"] == "books")
    assert "topics" not in books  # no rules and no topic column: nothing to report


def test_max_budget_respects_the_epoch_cap_of_every_topic(curated, tmp_path):
    """With ``total_tokens: max`` a cap shrinks what the entry can give: the uncapped topics bind at one epoch."""
    m, stage_dir = build_topic_stage(
        curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens="max"
    )
    cc = next(s for s in m["sources"] if s["name"] == "commoncrawl")
    assert cc["status"] in ("ok", "off_target")
    assert cc["unique_documents"] == cc["documents"]  # max_epochs 1: nothing repeated
    natural = _available_share(curated)
    others = (1 - natural["arts_entertainment"]) * cc["available_tokens"]
    assert cc["realised_tokens"] == pytest.approx(others / 0.92, rel=0.01)
    assert cc["realised_tokens"] < cc["available_tokens"]


def test_shares_and_weights(curated, tmp_path):
    rules = {"sports": {"share": 0.4}, "technology": {"weight": 0.5}}
    m, stage_dir = build_topic_stage(curated, tmp_path, rules, total_tokens=40000)
    shares = next(s for s in m["sources"] if s["name"] == "commoncrawl")["topics"]
    natural = _available_share(curated)
    q = {
        t: natural[t] * (0.5 if t == "technology" else 1.0)
        for t in ("arts_entertainment", "science", "technology")
    }
    for topic in DOCS:
        expected = 0.4 if topic == "sports" else 0.6 * q[topic] / sum(q.values())
        assert shares[topic]["target"] == pytest.approx(expected, abs=1e-6)
        assert abs(shares[topic]["realised"] - expected) <= 0.01, (topic, shares[topic])


def test_a_source_without_a_topic_column_is_built_and_says_the_rules_do_not_apply(curated, tmp_path):
    m, _ = build_topic_stage(
        curated,
        tmp_path,
        {"arts_entertainment": {"max_share": 0.08}},
        books={"topics": {"arts_entertainment": {"max_share": 0.1}}},
        total_tokens=40000,
    )
    books = next(s for s in m["sources"] if s["name"] == "books")
    assert books["status"] == "ok" and books["topics_applied"] is False
    assert "no topic column" in books["topics_note"]
    assert abs(books["realised_share"] - 0.2) <= 0.01


def test_same_seed_same_rows_and_rule_errors(curated, tmp_path):
    rules = {"arts_entertainment": {"max_share": 0.08}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, stage_dir = build_topic_stage(curated, tmp_path / "a", rules, total_tokens=20000)
    first = open(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))[0], "rb").read()
    _, stage_dir = build_topic_stage(curated, tmp_path / "b", rules, total_tokens=20000)
    assert open(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))[0], "rb").read() == first
    with pytest.raises(MixtureError, match="unknown topic 'cats'.*arts_entertainment"):
        build_topic_stage(curated, tmp_path, {"cats": {"share": 0.1}})
    with pytest.raises(MixtureError, match="exactly one of"):
        build_topic_stage(curated, tmp_path, {"sports": {"share": 0.1, "max_share": 0.2}})
    every = {t: {"max_share": 0.1} for t in DOCS}
    with pytest.raises(MixtureError, match="every topic with documents is capped"):
        build_topic_stage(curated, tmp_path, every, total_tokens=20000)
