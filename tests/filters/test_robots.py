"""robots.txt opt-outs (filters/robots.py): per-agent disallows from a snapshot folder, hosts without a file allowed,
and the recipe's robots:<agent> rejection when the step is switched on."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.robots import RobotsOptOut
from pipelines.runner import run_recipe
from tests.helpers.ops_hostile import _warc
from tests.pipelines.sources.test_commoncrawl import recipe


@pytest.fixture
def snapshot(tmp_path):
    folder = tmp_path / "robots"
    folder.mkdir()
    (folder / "news.example.com.txt").write_text(
        "User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
    )
    (folder / "blog.example.org").mkdir()
    (folder / "blog.example.org" / "robots.txt").write_text("User-agent: CCBot\nDisallow: /drafts/\n")
    (folder / "example.net.txt").write_text("User-agent: *\nAllow: /\n")
    return str(folder)


def test_disallows_per_agent_and_hosts_without_a_file(snapshot):
    step = RobotsOptOut(name="robots", snapshot_dir=snapshot)
    step.setup()
    assert step.verdict("https://news.example.com/world/rivers") == "robots:GPTBot"
    assert step.verdict("https://blog.example.org/drafts/post") == "robots:CCBot"
    assert step.verdict("https://blog.example.org/2024/post") is None
    assert step.verdict("https://www.example.net/page") is None  # www. found without it, and allowed
    assert step.verdict("https://unlisted.example.edu/") is None
    assert step.verdict(None) is None
    only_ccbot = RobotsOptOut(name="robots", snapshot_dir=snapshot, user_agents=["CCBot"])
    only_ccbot.setup()
    assert only_ccbot.verdict("https://news.example.com/private/x") == "robots:CCBot"  # `*` applies to CCBot
    assert only_ccbot.verdict("https://news.example.com/world/rivers") is None


def test_a_missing_snapshot_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="snapshot_dir"):
        RobotsOptOut(snapshot_dir=str(tmp_path / "nowhere")).setup()


def test_the_step_keeps_rows_it_does_not_reject(snapshot):
    step = RobotsOptOut(name="robots", snapshot_dir=snapshot)
    urls = ["https://news.example.com/a", "https://blog.example.org/b"]
    result = step(pa.table({"id": ["a", "b"], "url": urls, "text": ["x", "y"]}))
    assert list(result.reasons) == ["robots:GPTBot", None]


def test_the_recipe_rejects_opted_out_pages_when_switched_on(tmp_path, snapshot):
    page = (b"<html><body><article><p>Rivers shape the land they cross over thousands of years. Water picks up "
            b"sand and stones in the hills and carries them down towards the sea.</p></article></body></html>")
    warc = tmp_path / "robots.warc.gz"
    warc.write_bytes(_warc([("opted", page), ("open", page)], urn="robots",
                           urls={"opted": "https://news.example.com/rivers", "open": "https://example.net/rivers"}))
    out = str(tmp_path / "out")
    run_recipe(recipe(steps={"robots": {"enabled": True, "snapshot_dir": snapshot}}), str(warc), out,
               executor="local", progress=False)
    rejected = {r["id"]: r for r in pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()}
    assert rejected["urn:robots:opted"]["reason"] == "robots:GPTBot"
    assert rejected.get("urn:robots:open", {}).get("rejected_by") != "robots"
