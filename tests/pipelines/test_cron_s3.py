"""``winnow cron`` with OUTPUT on a loopback S3 server (moto), no shared filesystem: the first run gives the local
cron run's rows, mixture shards and report; a second run with nothing new does nothing; a run after one new input
processes only it (the books near-dup stage deduplicating it against the index in the bucket) and still gives the
local cron run's output."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

from mixtures import store
from pipelines.core import storage
from pipelines.core.folder import Folder
from tests.helpers.cli import command
from tests.helpers.mixture_data import write_mixture
from tests.helpers.paths import FIXTURES
from tests.helpers.s3 import moto_s3

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")
pytestmark = pytest.mark.timeout(300)

BUCKET = "winnow-cron"
cron_main = command("cron")


def digests(root: str, kind: str) -> list[tuple[str, str]]:
    """Sorted (id, sha1 of the whole row) of ``root/books/<kind>/*.parquet``, local or in the bucket."""
    out = []
    for o in Folder(root).child("books", kind).list(suffix=".parquet", recursive=False):
        for row in store.read_table(o.path).to_pylist():
            blob = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
            out.append((str(row["id"]), hashlib.sha1(blob).hexdigest()))
    return sorted(out)


def shard_rows(root: str) -> list[dict]:
    stage = storage.join(root, "mixtures", "bk")
    manifest = storage.read_json(storage.join(stage, "manifest.json"))
    return [
        r for sh in manifest["shards"] for r in store.read_table(storage.join(stage, sh["file"])).to_pylist()
    ]


def page(root: str) -> str:
    """The report page, with OUTPUT's location and the dedup work folders' names (fingerprints of listings, whose
    modification times differ between disk and bucket) replaced."""
    text = (
        storage.read_bytes(storage.join(root, "report", "index.html")).decode("utf-8").replace(root, "OUTPUT")
    )
    return re.sub(r"-[0-9a-f]{16}(?![0-9a-f])", "-FP", text)


def last_log(root: str) -> str:
    """The log of the latest run: on a bucket each run writes its own object under _cron/logs/."""
    logs = Folder(root).child("_cron", "logs").list(suffix=".log")
    return storage.read_bytes(logs[-1].path).decode("utf-8")


def test_cron_on_a_bucket_runs_then_does_nothing_then_only_the_new_input(tmp_path):
    books = tmp_path / "books-in"
    shutil.copytree(os.path.join(FIXTURES, "books"), books)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "books.yaml").write_text(f"input: {books}\n")
    mix = write_mixture(
        str(tmp_path / "bk.yaml"), {"books": {"share": 1.0}}, stage="bk", shard_max_tokens=2000
    )
    local = str(tmp_path / "out")
    common = ["--config-dir", str(cfg), "--executor", "local", "--sources", "books", "--stages", mix]

    with moto_s3(BUCKET):
        remote = f"s3://{BUCKET}/out"
        for out in (local, remote):
            assert cron_main(["--output", out, *common]) == 0
        for kind in ("docs", "rejected"):
            assert digests(remote, kind) == digests(local, kind) and digests(local, kind), kind
        assert shard_rows(remote) == shard_rows(local) and shard_rows(local)
        assert page(remote) == page(local)
        state = storage.read_json(f"{remote}/_cron/state.json")
        assert set(state["sources"]) == {"books"} and state["stages"]["report"]["status"] == "ok"
        manifest = Folder(remote).info("mixtures/bk/manifest.json")
        names = {o.path for o in Folder(remote).list()}
        assert not Folder(remote).child("_cron").exists(".lock")  # released when the run ended

        assert cron_main(["--output", remote, *common]) == 0  # nothing new: nothing runs, nothing is written
        second = last_log(remote)
        assert "books: unchanged" in second and "nothing changed since the last run" in second
        assert "processed" not in second
        assert Folder(remote).info("mixtures/bk/manifest.json") == manifest
        added = {o.path for o in Folder(remote).list()} - names
        assert {storage.dirname(p) for p in added} == {f"{remote}/_cron/logs"}  # the second run's log only

        shutil.copy(books / "pg90001.txt", books / "pg90001-copy.txt")  # one new input
        for out in (local, remote):
            assert cron_main(["--output", out, *common]) == 0
        third = last_log(remote)
        assert "books: 6 inputs, 1 processed, 5 already done" in third
        summary = storage.read_json(f"{remote}/books/summary.json")
        assert summary["corpus_stages"]["book_dedup"]["incremental"]
        assert summary["corpus_stages"]["book_dedup"]["new_files"] == 1
        for kind in ("docs", "rejected"):
            assert digests(remote, kind) == digests(local, kind), kind
        rejected = {
            r["id"]: r["reason"]
            for o in Folder(remote).child("books", "rejected").list(suffix=".parquet")
            for r in store.read_table(o.path, columns=["id", "reason"]).to_pylist()
        }
        assert rejected["gutenberg:90001:pg90001-copy.txt"] == "dedup:book"  # the copy, against the index
        assert shard_rows(remote) == shard_rows(local)
        assert page(remote) == page(local)
