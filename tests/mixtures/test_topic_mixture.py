"""Topic-aware mixtures: per-topic shares, caps and down-weights inside a source entry (mixtures/topics.py)."""

from __future__ import annotations

import collections
import glob
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixtures.build import build_stage
from mixtures.spec import MixtureError, load_mixture
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture

SENTENCES = {
    "arts_entertainment": [
        "The film premiered at the festival and the lead actress won praise for her quiet performance.",
        "The band's third album mixes folk ballads with loud guitar songs recorded live in one take.",
        "Critics called the novel a sprawling family saga set over three generations.",
    ],
    "sports": [
        "The striker scored twice in the second half as the home side won the league match.",
        "She finished the marathon in under three hours despite the heat on the final climb.",
    ],
    "science": [
        "The telescope measured the light curve of the star as the planet crossed in front of it.",
        "Researchers sequenced the genome of the bacterium and found two new enzymes.",
    ],
    "technology": [
        "The update fixes a memory leak in the browser and adds support for the new image format.",
        "Install the package with pip and set the environment variable before running the server.",
    ],
}
#: documents per topic: arts & entertainment is over-represented, as on the web
DOCS = {"arts_entertainment": 400, "sports": 200, "science": 200, "technology": 200}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """CommonCrawl docs with a ``topic`` column of known distribution; books without one."""
    out = str(tmp_path_factory.mktemp("topics"))
    rng = random.Random(3)
    rows = []
    for topic, n in DOCS.items():
        for i in range(n):
            text = " ".join(rng.choice(SENTENCES[topic]) for _ in range(rng.randint(2, 30)))
            rows.append({"id": f"cc/{topic}/{i:04d}", "text": text, "topic": topic, "topic_prob": 0.9})
    rng.shuffle(rows)
    base = docs_table("commoncrawl", len(rows))
    table = base.set_column(0, "id", pa.array([r["id"] for r in rows], pa.string()))
    table = table.set_column(3, "text", pa.array([r["text"] for r in rows], pa.large_string()))
    table = table.append_column("topic", pa.array([r["topic"] for r in rows], pa.string()))
    table = table.append_column("topic_prob", pa.array([r["topic_prob"] for r in rows], pa.float32()))
    write_docs(out, "commoncrawl", table.slice(0, 500), "cc-a")
    write_docs(out, "commoncrawl", table.slice(500), "cc-b")
    write_docs(out, "books", docs_table("books", 100, max_sentences=60), "books")
    return out


def _build(output, tmp_path, cc_topics, books=None, **top):
    sources = {
        "commoncrawl": {"share": 0.8, "max_epochs": 1.0, "topics": cc_topics},
        "books": {"share": 0.2, "max_epochs": 2.0, **(books or {})},
    }
    spec = load_mixture(path=write_mixture(str(tmp_path / "mix.yaml"), sources, **top))
    return build_stage(spec, output), os.path.join(output, "mixtures", spec.stage)


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
    m, stage_dir = _build(curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens=40000)
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
    m, stage_dir = _build(curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens="max")
    cc = next(s for s in m["sources"] if s["name"] == "commoncrawl")
    assert cc["status"] in ("ok", "off_target")
    assert cc["unique_documents"] == cc["documents"]  # max_epochs 1: nothing repeated
    natural = _available_share(curated)
    others = (1 - natural["arts_entertainment"]) * cc["available_tokens"]
    assert cc["realised_tokens"] == pytest.approx(others / 0.92, rel=0.01)
    assert cc["realised_tokens"] < cc["available_tokens"]


def test_shares_and_weights(curated, tmp_path):
    rules = {"sports": {"share": 0.4}, "technology": {"weight": 0.5}}
    m, stage_dir = _build(curated, tmp_path, rules, total_tokens=40000)
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
    m, _ = _build(
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
    _, stage_dir = _build(curated, tmp_path / "a", rules, total_tokens=20000)
    first = open(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))[0], "rb").read()
    _, stage_dir = _build(curated, tmp_path / "b", rules, total_tokens=20000)
    assert open(sorted(glob.glob(os.path.join(stage_dir, "shards", "*.parquet")))[0], "rb").read() == first
    with pytest.raises(MixtureError, match="unknown topic 'cats'.*arts_entertainment"):
        _build(curated, tmp_path, {"cats": {"share": 0.1}})
    with pytest.raises(MixtureError, match="exactly one of"):
        _build(curated, tmp_path, {"sports": {"share": 0.1, "max_share": 0.2}})
    every = {t: {"max_share": 0.1} for t in DOCS}
    with pytest.raises(MixtureError, match="every topic with documents is capped"):
        _build(curated, tmp_path, every, total_tokens=20000)


def test_report_shows_the_topic_distribution_of_sources_and_stages(curated, tmp_path):
    import re

    from mixtures.report import build_report

    _build(curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens=20000)
    page = open(build_report(curated), encoding="utf-8").read()
    topics = page.split("<h2>Topics</h2>", 1)[1]
    images = re.findall(r'<img src="([^"]+)"', topics)
    assert images == ["topics_sources.png", "topics_test.png"]
    for img in images:
        with open(os.path.join(curated, "report", img), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the source table: commoncrawl's documents by topic (400 of 1,000 are arts & entertainment)
    assert "<td>commoncrawl</td><td>1,000</td><td>0.4000</td>" in topics
    assert "No topic column (topic shares do not apply): books" in topics
    # the stage table: the capped topic's rule, target and realised share
    row = re.search(
        r"<td>commoncrawl</td><td>arts_entertainment</td><td>([^<]*)</td><td>[^<]*</td>"
        r"<td>([^<]*)</td><td>([^<]*)</td>",
        topics,
    )
    assert row and "max_share" in row.group(1) and float(row.group(2)) == 0.08
    assert abs(float(row.group(3)) - 0.08) <= 0.01
