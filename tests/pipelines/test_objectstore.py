"""INPUT and OUTPUT on object storage (s3://) against a real S3 endpoint on loopback (moto's server).

The CommonCrawl recipe (with its MinHash corpus stage) runs from s3:// to s3:// and must give what a local run gives
on the same files; reruns change nothing; a deleted marker redoes exactly its input; an input that fails leaves no
object; the lock object refuses a second run; the DuckDB views work over s3:// without httpfs.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.core import storage
from pipelines.core.discovery import discover
from pipelines.core.layout import input_key
from pipelines.core.locks import LockedError, object_lock
from pipelines.query import run_query
from pipelines.runner import InputsFailed, run_recipe
from tests.helpers.paths import FIXTURES
from tests.helpers.s3 import moto_s3
from tests.pipelines.sources.test_commoncrawl import _good_page, _warc_bytes, recipe

pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")

BUCKET = "winnow-test"
IN = f"s3://{BUCKET}/in/cc"
CC = os.path.join(FIXTURES, "commoncrawl")
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "WINNOW_LOCK_STALE_S": "600",
}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (a free port), the AWS_* environment pointing at it, and one bucket."""
    with moto_s3(BUCKET, ENV) as client:
        yield client


@pytest.fixture(scope="module")
def inputs(s3, tmp_path_factory):
    """The two fixture WARCs plus one holding a copy of a kept fixture page (for MinHash to remove), locally and
    in the bucket (one of them one folder deeper, to exercise the recursive search)."""
    local = tmp_path_factory.mktemp("cc-in")
    for p in glob.glob(os.path.join(CC, "*.warc.gz")):
        shutil.copy(p, local / os.path.basename(p))
    (local / "seg").mkdir()
    (local / "seg" / "copies.warc.gz").write_bytes(_warc_bytes([("copy-of-rivers", _good_page(0))]))
    for p in sorted(glob.glob(str(local / "**" / "*.warc.gz"), recursive=True)):
        rel = os.path.relpath(p, local)
        storage.upload_file(p, f"{IN}/{rel}")
    return str(local)


#: the corpus stages without MinHash (tests of the other stages)
NO_MINHASH = {"corpus_stages": {"minhash": {"enabled": False}}}


def snapshot(s3, prefix: str) -> dict[str, tuple[int, int, str]]:
    """Every object under ``prefix``: (size, mtime_ns, sha256)."""
    return {
        o.uri: (o.size, o.mtime_ns, hashlib.sha256(storage.read_bytes(o.uri)).hexdigest())
        for o in storage.list_files(prefix)
    }


def published(snap: dict[str, tuple[int, int, str]]) -> dict[str, tuple[int, int, str]]:
    """``snap`` without the stages' work folders and index (``_dedup/<folder>/...``: new work after new docs)."""
    return {k: v for k, v in snap.items() if not re.search(r"/_dedup/[^/]+/", k)}


def rows(uri_or_dir: str, kind: str) -> list[dict]:
    """Every row of ``<root>/commoncrawl/<kind>/*.parquet`` (local or s3), sorted by id."""
    if storage.is_uri(uri_or_dir):
        files = [o.uri for o in storage.list_files(f"{uri_or_dir}/commoncrawl/{kind}")]
        tables = [pq.read_table(storage.resolve(u)[1], filesystem=storage.resolve(u)[0]) for u in files]
    else:
        tables = [
            pq.read_table(p) for p in glob.glob(os.path.join(uri_or_dir, "commoncrawl", kind, "*.parquet"))
        ]
    out = [r for t in tables for r in t.to_pylist()]
    return sorted(out, key=lambda r: r["id"])


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cc-local"))
    return out, run_recipe(recipe(), inputs, out, executor="local", progress=False)


@pytest.fixture(scope="module")
def s3_run(s3, inputs):
    out = f"s3://{BUCKET}/out"
    return out, run_recipe(recipe(), IN + "/", out, executor="local", progress=False)


def test_discovery_on_s3_finds_inputs_by_pattern_and_glob(s3, inputs):
    from pipelines.readers.warc import WarcReader

    found = WarcReader().discover(IN)
    assert [storage.basename(u) for u in found] == [
        "crawl-00000.warc.gz",
        "crawl-00001.warc.gz",
        "copies.warc.gz",
    ]
    assert WarcReader().discover(f"{IN}/*.warc.gz") == found[:2]
    assert WarcReader().discover(f"{IN}/seg/copies.warc.gz") == [f"{IN}/seg/copies.warc.gz"]
    with pytest.raises(FileNotFoundError, match="names no object"):
        WarcReader().discover(f"s3://{BUCKET}/nothing-here")
    assert input_key(found[0]) == hashlib.sha1(found[0].encode()).hexdigest()[:16]


def test_s3_run_gives_what_a_local_run_gives(s3, s3_run, local_run):
    out, result = s3_run
    local_out, local_result = local_run
    docs, local_docs = rows(out, "docs"), rows(local_out, "docs")
    assert [(d["id"], d["text"]) for d in docs] == [(d["id"], d["text"]) for d in local_docs]
    assert docs == local_docs  # every column, scores included
    rejected, local_rejected = rows(out, "rejected"), rows(local_out, "rejected")
    assert [(r["id"], r["text"], r["reason"], r["rejected_by"]) for r in rejected] == [
        (r["id"], r["text"], r["reason"], r["rejected_by"]) for r in local_rejected
    ]
    # the copy was found by MinHash across inputs; the survivor rule keeps the longer text (the fixture page,
    # 1192 characters; the copy under another title has 1173), although the copy's id sorts first
    assert [r["reason"] for r in rejected if r["id"] == "urn:bad:copy-of-rivers"] == ["dedup:minhash"]
    assert "urn:winnow:kept-rivers" in {d["id"] for d in docs}
    assert result.summary["corpus_stages"]["minhash"]["moved_to_rejected"] == 1
    s = result.summary
    assert (s["read"], s["kept"], s["rejected"]) == (
        local_result.summary["read"],
        local_result.summary["kept"],
        local_result.summary["rejected"],
    )
    assert s["read"] == s["kept"] + s["rejected"] == len(docs) + len(rejected)
    assert s["rejected_by_reason"] == local_result.summary["rejected_by_reason"]
    for uri in discover(IN, ["**/*.warc.gz"]):
        key = input_key(uri)
        stats = storage.read_json(f"{out}/commoncrawl/stats/{key}.json")
        assert stats["input"] == uri and stats["read"] == stats["kept"] + stats["rejected"]
        assert storage.read_json(f"{out}/commoncrawl/_done/{key}.json")["key"] == key
    names = [o.uri for o in storage.list_files(out)]
    assert not any(".tmp-" in n for n in names) and f"{out}/commoncrawl/.lock" not in names
    dups = pq.read_table(f"{BUCKET}/out/commoncrawl/duplicates/minhash.parquet", filesystem=s3)
    assert all(i.startswith(f"s3://{BUCKET}/out/commoncrawl/docs/") for i in dups.column("input").to_pylist())


def test_rerun_changes_nothing(s3, s3_run):
    out, first = s3_run
    before = snapshot(s3, out)
    again = run_recipe(recipe(), IN, out, executor="local", progress=False)
    assert (again.processed, again.already_done) == (0, 3)
    assert again.summary["corpus_stages"]["minhash"]["up_to_date"] is True
    after = snapshot(s3, out)
    assert after.keys() == before.keys()
    summary = f"{out}/commoncrawl/summary.json"
    # every object is left as it was (not even rewritten: same modification time); only summary.json is written
    # again, with the same counts (its stage entry now says up_to_date, as a local rerun's does)
    assert {k: v for k, v in after.items() if k != summary} == {
        k: v for k, v in before.items() if k != summary
    }
    for k in ("read", "kept", "rejected", "rejected_by_reason", "skipped"):
        assert again.summary[k] == first.summary[k]


def test_deleted_marker_redoes_exactly_that_input(s3, s3_run):
    out, _ = s3_run
    # the input whose page MinHash removed: redone, the page is back in its docs until the stage removes it again
    redo = [
        u
        for u in discover(IN, ["**/*.warc.gz"])
        if "urn:bad:copy-of-rivers"
        in pq.read_table(f"{BUCKET}/out/commoncrawl/rejected/{input_key(u)}.parquet", filesystem=s3)
        .column("id")
        .to_pylist()
    ]
    assert len(redo) == 1
    key = input_key(redo[0])
    before = published(snapshot(s3, out))
    storage.delete(f"{out}/commoncrawl/_done/{key}.json")
    result = run_recipe(recipe(), IN, out, executor="local", progress=False)
    assert (result.processed, result.already_done) == (1, 2)
    after = published(snapshot(s3, out))
    assert after.keys() == before.keys()
    rewritten = {k for k in after if after[k][1] != before[k][1]}
    own = {
        f"{out}/commoncrawl/{kind}/{key}.{ext}"
        for kind, ext in (("docs", "parquet"), ("rejected", "parquet"), ("stats", "json"), ("_done", "json"))
    }
    stage = {
        f"{out}/commoncrawl/duplicates/minhash.parquet",
        f"{out}/commoncrawl/duplicates/unique_ids.parquet",
        f"{out}/commoncrawl/_dedup/unique_ids.json",
        f"{out}/commoncrawl/duplicates/url_dedup.parquet",
        f"{out}/commoncrawl/_dedup/url_dedup.json",
        f"{out}/commoncrawl/_dedup/minhash.json",
        f"{out}/commoncrawl/_dedup/line_dedup.json",
        f"{out}/commoncrawl/_dedup/_chain.json",
        f"{out}/commoncrawl/summary.json",
    }
    assert own <= rewritten <= own | stage  # the other inputs' objects were not touched
    assert result.summary["corpus_stages"]["minhash"]["moved_to_rejected"] == 1
    for kind in ("docs", "rejected"):  # redone, and the copy removed again by MinHash: the same bytes
        uri = f"{out}/commoncrawl/{kind}/{key}.parquet"
        assert after[uri][2] == before[uri][2]
    assert result.summary["kept"] == len(rows(out, "docs"))


def test_failed_input_leaves_no_object_and_is_redone(s3, inputs, monkeypatch):
    out = f"s3://{BUCKET}/failing"
    import pipelines.core.process as process

    real = process.run_steps
    calls = {"n": 0}

    def flaky(steps, batch, stats):
        calls["n"] += 1
        if "copy-of-rivers" in batch.column("id").to_pylist()[0]:
            raise RuntimeError("worker lost mid-input")
        return real(steps, batch, stats)

    monkeypatch.setattr(process, "run_steps", flaky)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_recipe(recipe(**NO_MINHASH), IN, out, executor="local", progress=False)
    key = input_key(f"{IN}/seg/copies.warc.gz")
    names = {o.uri for o in storage.list_files(out)}
    assert not any(key in n for n in names)  # no docs, rejected, stats or marker object for it
    assert f"{out}/commoncrawl/.lock" not in names
    monkeypatch.setattr(process, "run_steps", real)
    result = run_recipe(recipe(**NO_MINHASH), IN, out, executor="local", progress=False)
    assert (result.processed, result.already_done) == (1, 2)


def test_input_sizes_come_from_the_listing_not_a_request_per_input(s3, inputs, monkeypatch):
    import pipelines.core.process as process

    def no_head(path):
        raise AssertionError(f"a request for the size of {path}")

    monkeypatch.setattr(process, "file_info", no_head)
    out = f"s3://{BUCKET}/sized"
    run_recipe(recipe(**NO_MINHASH), IN, out, executor="local", progress=False)
    listed = {o.uri: o.size for o in storage.list_files(IN)}
    for uri, size in listed.items():
        assert storage.read_json(f"{out}/commoncrawl/stats/{input_key(uri)}.json")["input_bytes"] == size > 0


def test_lock_object_refuses_a_second_run_and_names_the_holder(s3, inputs):
    out = f"s3://{BUCKET}/locked"
    lock = f"{out}/commoncrawl/.lock"
    with object_lock(lock) as held:
        with pytest.raises(LockedError) as err:
            run_recipe(recipe(), IN, out, executor="local", progress=False)
        message = str(err.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert "advisory" in message and "--wait" in message and "WINNOW_LOCK_STALE_S" in message
        assert storage.read_json(lock)["token"] == held["token"]
    assert not storage.exists(lock)  # released


def test_stale_lock_objects_are_taken_over(s3, monkeypatch):
    lock = f"s3://{BUCKET}/stale/commoncrawl/.lock"
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a run killed on this host: its process is gone, so the lock is stale at once
    storage.write_json(lock, {"token": "x", "host": socket.gethostname(), "pid": dead.pid, "since": "then"})
    with object_lock(lock) as held:
        assert storage.read_json(lock)["token"] == held["token"]
    # a run on another host that stopped renewing its lock
    storage.write_json(lock, {"token": "y", "host": "elsewhere", "pid": 1, "since": "then"})
    with pytest.raises(LockedError, match="elsewhere"), object_lock(lock):
        pass
    monkeypatch.setenv("WINNOW_LOCK_STALE_S", "0")
    with object_lock(lock) as held:
        assert storage.read_json(lock)["token"] == held["token"]
    assert not storage.exists(lock)


def test_query_views_over_s3_without_httpfs(s3_run, local_run):
    out, _ = s3_run
    local_out, _ = local_run
    for sql in (
        "SELECT count(*) FROM docs",
        "SELECT reason, count(*) FROM rejected GROUP BY 1 ORDER BY 1",
        "SELECT id, lang, round(lang_score, 6) FROM commoncrawl_docs ORDER BY id",
        "SELECT sum(read), sum(kept), sum(rejected) FROM stats",
        "SELECT step, sum(seen), sum(kept) FROM step_stats GROUP BY 1 ORDER BY 1",
        "SELECT id, kept FROM duplicates ORDER BY id",
    ):
        assert run_query(out, sql) == run_query(local_out, sql), sql
    cols, got = run_query(out, "SELECT DISTINCT input FROM stats ORDER BY 1")
    assert all(r[0].startswith(IN) for r in got)


def test_cli_run_and_query_on_s3(s3, inputs, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.sources.commoncrawl import without_models

    config = tmp_path / "cc.yaml"
    config.write_text(yaml.safe_dump(without_models()))
    out = f"s3://{BUCKET}/cli"
    assert (
        main(
            [
                "run",
                "--source",
                "commoncrawl",
                "--input",
                IN,
                "--output",
                out,
                "--config",
                str(config),
                "--executor",
                "local",
                "--no-progress",
            ]
        )
        == 0
    )
    assert f"output: {out}/commoncrawl" in capsys.readouterr().out
    assert main(["query", "--output", out, "--sql", "SELECT count(*) AS n FROM commoncrawl_docs"]) == 0
    assert "(1 row)" in capsys.readouterr().out


def test_ray_run_on_s3_matches_the_local_executor(s3, s3_run, ray_local):
    """Ray tasks get the endpoint and credentials through runtime_env (they started before this test set them)."""
    out, _ = s3_run
    ray_out = f"s3://{BUCKET}/ray"
    result = run_recipe(recipe(), IN, ray_out, executor="ray", progress=False)
    assert result.processed == 3
    assert rows(ray_out, "docs") == rows(out, "docs")
    assert [(r["id"], r["reason"]) for r in rows(ray_out, "rejected")] == [
        (r["id"], r["reason"]) for r in rows(out, "rejected")
    ]
    stats = [storage.read_json(o.uri) for o in storage.list_files(f"{ray_out}/commoncrawl/stats")]
    assert all(s.get("node") for s in stats)  # written from the Ray tasks


def _source_inputs(source: str, tmp) -> dict[str, str]:
    """Local input files of a source's fixtures, by their key under the bucket's input prefix."""
    base = os.path.join(FIXTURES, source)
    if source == "github":  # on object storage a repository is an archive
        import tarfile

        out = {}
        for repo in sorted(os.listdir(base)):
            if os.path.isdir(os.path.join(base, repo)):
                archive = tmp / f"{repo}.tar.gz"
                with tarfile.open(archive, "w:gz") as tar:
                    tar.add(os.path.join(base, repo), arcname=repo)
                out[f"{repo}.tar.gz"] = str(archive)
        return out
    patterns = {"books": "*.txt", "stackexchange": "*/Posts.xml", "wikipedia": "*.xml", "arxiv": "*.tex"}
    return {os.path.relpath(p, base): p for p in sorted(glob.glob(os.path.join(base, patterns[source])))}


@pytest.mark.parametrize("source", ["books", "stackexchange", "wikipedia", "arxiv", "github"])
def test_other_sources_on_s3_match_their_local_run(s3, tmp_path, source):
    """Readers that do not stream URIs get each object downloaded to a temporary file named like the original
    (``<parent>/<name>``), so the documents and their ids are the same as from local files; their corpus stages
    (books near-dup, GitHub exact dedup) run in place on the bucket."""
    from pipelines.sources.registry import build_recipe, load_config

    files = _source_inputs(source, tmp_path)
    local_in = tmp_path / "in" / source  # the bucket's layout: Wikipedia ids name the dump's folder and file
    for rel, p in files.items():
        os.makedirs(local_in / os.path.dirname(rel), exist_ok=True)
        shutil.copy(p, local_in / rel)
        storage.upload_file(p, f"s3://{BUCKET}/in/{source}/{rel}")
    cfg = load_config(source)
    local = run_recipe(
        build_recipe(source, cfg), str(local_in), str(tmp_path / "out"), executor="local", progress=False
    )
    out = f"s3://{BUCKET}/{source}-out"
    remote = run_recipe(
        build_recipe(source, cfg), f"s3://{BUCKET}/in/{source}", out, executor="local", progress=False
    )
    assert remote.inputs == local.inputs == len(files)
    for k in ("read", "kept", "rejected", "rejected_by_reason", "skipped"):
        assert remote.summary[k] == local.summary[k], k
    sql = "SELECT id, text FROM docs ORDER BY id"
    assert run_query(out, sql) == run_query(str(tmp_path / "out"), sql)
    sql = "SELECT id, reason, rejected_by FROM rejected ORDER BY id"
    assert run_query(out, sql) == run_query(str(tmp_path / "out"), sql)
    again = run_recipe(
        build_recipe(source, cfg), f"s3://{BUCKET}/in/{source}", out, executor="local", progress=False
    )
    assert again.processed == 0


def test_store_failure_mid_input_fails_it_without_a_marker(s3, inputs, monkeypatch):
    """A read that fails in the store (network, permissions) is not bad input: the input fails and is redone,
    instead of being recorded as unreadable and marked done with what was read so far."""
    out = f"s3://{BUCKET}/flaky-store"
    real_open = storage.open_input_stream

    class DroppedConnection:
        def __init__(self, raw):
            self.raw, self.got = raw, 0

        def read(self, size=-1):
            if self.got > 1000:
                raise OSError("connection reset by peer")
            data = self.raw.read(size)
            self.got += len(data)
            return data

        def close(self):
            self.raw.close()

    def flaky_open(uri, buffer_size=storage.STREAM_BUFFER, observe=None):
        stream = real_open(uri, buffer_size, observe)
        if buffer_size == storage.STREAM_BUFFER:  # the main pass, not the look at the first bytes
            stream._raw = DroppedConnection(stream._raw)
        return stream

    def run_one():
        return run_recipe(
            recipe(**NO_MINHASH),
            f"{IN}/crawl-00001.warc.gz",
            out,
            executor="local",
            progress=False,
        )

    monkeypatch.setattr(storage, "open_input_stream", flaky_open)
    with pytest.raises(InputsFailed, match="StorageError: .*connection reset") as failed:
        run_one()
    assert list(failed.value.failures) == [f"{IN}/crawl-00001.warc.gz"]
    # nothing of the input was written; the summary records the failure
    assert [o.uri for o in storage.list_files(out)] == [f"{out}/commoncrawl/summary.json"]
    assert list(storage.read_json(f"{out}/commoncrawl/summary.json")["failed"]) == [f"{IN}/crawl-00001.warc.gz"]
    monkeypatch.setattr(storage, "open_input_stream", real_open)
    assert run_one().processed == 1


def test_local_only_commands_refuse_uris_and_cron_fingerprints_uri_inputs(s3, inputs, capsys):
    from pipelines.cli import main
    from pipelines.cron import fingerprint

    assert main(["report", "--output", f"s3://{BUCKET}/out"]) == 2  # the mixture build works on S3
    assert "local paths only" in capsys.readouterr().err
    uri = f"{IN}/crawl-00000.warc.gz"
    first = fingerprint({}, [uri])
    assert fingerprint({}, [uri]) == first
    storage.upload_file(
        os.path.join(CC, "crawl-00001.warc.gz"), f"s3://{BUCKET}/in/other/crawl-00000.warc.gz"
    )
    assert fingerprint({}, [f"s3://{BUCKET}/in/other/crawl-00000.warc.gz"]) != first
