"""The report's topic section (pipelines/report/topics.py) on a curated tree of known topic distribution."""

from __future__ import annotations

import os
import re

import pytest

from pipelines.report.build import build_report
from tests.helpers.topic_data import build_topic_stage, write_topic_corpus


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_topic_corpus(str(tmp_path_factory.mktemp("topics")))


def test_report_shows_the_topic_distribution_of_sources_and_stages(curated, tmp_path):
    build_topic_stage(curated, tmp_path, {"arts_entertainment": {"max_share": 0.08}}, total_tokens=20000)
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
