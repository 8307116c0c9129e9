"""``winnow report`` with OUTPUT on a loopback S3 server (moto): the same page as the report of the same output on
local disk (every number of every section), written into the bucket with its plots."""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixtures.build import build_stage
from mixtures.spec import load_mixture
from pipelines.core import storage
from pipelines.report.build import build_report
from tests.helpers.cli import command
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture
from tests.helpers.s3 import moto_s3
from tests.pipelines.report.test_report import _summary

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")

BUCKET = "winnow-report"
report_main = command("report")
TOPICS = ["science", "sports", "news"]


def _output(out: str) -> None:
    """Kept and rejected documents with scores, languages and topics, a summary, stats and duplicate clusters."""
    extra = {"quality_prob": [i / 70 for i in range(70)], "topic": [TOPICS[i % 3] for i in range(70)]}
    write_docs(out, "commoncrawl", docs_table("commoncrawl", 70, extra=extra))
    write_docs(out, "books", docs_table("books", 20))
    rejected = docs_table("commoncrawl", 12, seed=1)
    reasons = ["lang:not_en"] * 8 + ["gopher:too_few_words"] * 4
    rejected = rejected.append_column("reason", pa.array(reasons))
    os.makedirs(os.path.join(out, "commoncrawl", "rejected"))
    pq.write_table(rejected, os.path.join(out, "commoncrawl", "rejected", "r.parquet"))
    _summary(out, "commoncrawl")
    os.makedirs(os.path.join(out, "commoncrawl", "duplicates"))
    pq.write_table(
        pa.table({"id": ["a", "b", "c", "d", "e"], "cluster_id": ["a", "a", "a", "d", "d"]}),
        os.path.join(out, "commoncrawl", "duplicates", "part-0.parquet"),
    )


def _upload(local: str, uri: str) -> None:
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            storage.upload_file(path, storage.join(uri, os.path.relpath(path, local)))


def test_report_of_a_bucket_equals_the_report_of_the_same_output_on_disk(tmp_path, capsys):
    local = str(tmp_path / "out")
    _output(local)
    mix = write_mixture(
        str(tmp_path / "m.yaml"), {"commoncrawl": {"share": 0.7}, "books": {"share": 0.3}}, stage="core"
    )
    with moto_s3(BUCKET):
        remote = f"s3://{BUCKET}/out"
        _upload(local, remote)
        for out in (local, remote):  # the stage built on each (on the bucket: its runs/<run>/ commit)
            build_stage(load_mixture(path=mix), out)
        assert build_report(local) == os.path.join(local, "report", "index.html")
        assert report_main(["--output", remote]) == 0  # the command takes a URI now
        assert f"{remote}/report/index.html" in capsys.readouterr().out
        page = storage.read_bytes(f"{remote}/report/index.html").decode("utf-8")
        images = re.findall(r'<img src="([^"]+)"', page)
        for img in images:  # every plot the page names is in the bucket, beside it
            assert storage.read_bytes(f"{remote}/report/{img}")[:8] == b"\x89PNG\r\n\x1a\n"
        stray = [o.path for o in storage.list_files(f"{remote}/report") if ".tmp" in o.path]
    with open(os.path.join(local, "report", "index.html"), encoding="utf-8") as f:
        local_page = f.read()
    assert not stray
    assert page.replace(remote, "OUTPUT") == local_page.replace(local, "OUTPUT")
    for shown in (
        "lang:not_en (8)",  # the languages table, from the rejected rows
        "<td>science</td>",  # the topic table
        "dedup_commoncrawl_duplicates.png",
        "shares_core.png",
        "hist_quality_prob.png",
        "topics_sources.png",
    ):
        assert shown in page, shown
