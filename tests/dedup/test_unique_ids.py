"""Ids unique per source (dedup.stages.UniqueIdsStage in the CommonCrawl recipe): the same WARC records in two input
files keep one document per id, the others are rejected dedup:duplicate_id, and nothing is lost."""

from __future__ import annotations

import os
from collections import Counter

import pyarrow.parquet as pq

from pipelines.runner import run_recipe
from tests.helpers.ops_hostile import _warc
from tests.helpers.sources import assert_accounting
from tests.pipelines.sources.test_commoncrawl import recipe

#: the corpus stages without MinHash (tests of the other stages)
NO_MINHASH = {"corpus_stages": {"minhash": {"enabled": False}}}


def _page(topic: str, extra: str = "") -> bytes:
    return (
        f"<html><head><title>{topic}</title></head><body><article><p>The {topic} committee met on Monday to review "
        f"the plans for the new footbridge over the canal, which has been closed since the spring floods.</p>"
        f"<p>Engineers told the meeting that the old supports had been weakened by years of heavy traffic. Repairs "
        f"would take at least six months. During that time a small ferry will carry walkers across the water. The "
        f"council expects to publish the full timetable for the works next week.{extra}</p>"
        f"</article></body></html>"
    ).encode()


def test_records_in_two_files_keep_one_document_per_id(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    first = [("bridge", _page("bridge")), ("ferry", _page("ferry"))]
    (src / "a.warc.gz").write_bytes(_warc(first, urn="ids"))
    # a re-packaged copy: the same records (one with a slightly longer text) and one new record
    (src / "b.warc.gz").write_bytes(
        _warc([("bridge", _page("bridge", " Local shops welcomed the news.")), ("canal", _page("canal"))], urn="ids")
    )
    out = str(tmp_path / "out")
    result = run_recipe(recipe(**NO_MINHASH), str(src), out, executor="local", progress=False)
    docs = pq.read_table(os.path.join(out, "commoncrawl", "docs")).to_pylist()
    rejected = pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()
    kept = Counter(d["id"] for d in docs)
    assert set(kept) == {"urn:ids:bridge", "urn:ids:ferry", "urn:ids:canal"} and max(kept.values()) == 1
    dup = [r for r in rejected if r["reason"] == "dedup:duplicate_id"]
    assert [r["id"] for r in dup] == ["urn:ids:bridge"]
    survivor = next(d for d in docs if d["id"] == "urn:ids:bridge")
    assert "Local shops" in survivor["text"]  # the longer copy survives
    assert result.summary["corpus_stages"]["unique_ids"]["removed"] == 1
    assert_accounting(out, "commoncrawl")
