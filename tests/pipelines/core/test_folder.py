"""``Folder``: the same test bodies on a local temporary folder and on an S3 bucket (moto's server on loopback).

Listing, existence, JSON round trips, atomic Parquet and byte writes (an exception inside leaves neither the file
nor a temporary name), and fingerprints that follow the listing (size, a new file) and nothing else.
"""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core import storage
from pipelines.core.folder import Folder, listing_fingerprint, stat
from tests.helpers.s3 import moto_s3

BUCKET = "winnow-folder-test"
DOCS = pa.table(
    {
        "id": ["cc/0001", "cc/0002", "cc/0003"],
        "text": [
            "The committee met on Tuesday to review the harbour dredging plan and its cost to the town.",
            "Preheat the oven to 200 C. Mix the flour, butter and sugar until the dough holds together.",
            "Die Gemeinde hat beschlossen, die Brücke über den Fluss im nächsten Frühjahr zu erneuern.",
        ],
    }
)


@pytest.fixture(scope="module")
def s3_bucket():
    """A moto S3 server on loopback with one bucket; its URI."""
    pytest.importorskip("moto", reason="moto[server] is in the dev extra: pip install -e '.[dev]'")
    with moto_s3(BUCKET):
        yield f"s3://{BUCKET}"


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> Folder:
    if request.param == "local":
        return Folder(str(tmp_path / "out"))
    bucket = request.getfixturevalue("s3_bucket")
    return Folder(f"{bucket}/{request.node.name.replace('[', '-').rstrip(']')}/")


def _everything(folder: Folder) -> list[str]:
    """Every file under the folder, temporary names included, relative."""
    return [o.path[len(folder.location) + 1 :] for o in folder.list(hidden=True)]


def test_list_exists_and_json_roundtrip(folder):
    assert folder.list() == [] and not folder.exists("stats/a.json")
    stats = {"input": "crawl-00000.warc.gz", "kept": 2, "rejected_by_reason": {"gopher:too_few_words": 1}}
    folder.write_json("stats/a.json", stats)
    folder.write_json("stats/b.json", {"kept": 0, "errors": ["read_error:EOFError"]})
    folder.write_bytes("_done/a.json", b"{}")
    folder.write_table("docs/a.parquet", DOCS)
    assert folder.read_json("stats/a.json") == stats
    assert folder.read_bytes("stats/a.json") == storage.json_bytes(stats)
    assert (
        folder.exists("stats/a.json") and folder.isfile("stats/a.json") and not folder.exists("stats/c.json")
    )
    assert folder.exists("stats") and folder.child("stats").exists()
    names = [o.path for o in folder.list()]
    assert names == sorted(
        folder.uri(n) for n in ("_done/a.json", "docs/a.parquet", "stats/a.json", "stats/b.json")
    )
    assert [o.path for o in folder.list("stats/*.json")] == [
        folder.uri("stats/a.json"),
        folder.uri("stats/b.json"),
    ]
    assert [o.path for o in folder.list(suffix=".parquet")] == [folder.uri("docs/a.parquet")]
    assert [o.path for o in folder.child("stats").list(recursive=False)] == [
        folder.uri("stats", "a.json"),
        folder.uri("stats", "b.json"),
    ]
    assert folder.size("stats/a.json") == len(storage.json_bytes(stats))
    with folder.open_input("docs/a.parquet") as f:
        assert pq.read_table(pa.BufferReader(f.read())).equals(DOCS)
    assert pq.read_table(folder.open_input_file("docs/a.parquet")).equals(DOCS)
    with folder.local_copy("docs/a.parquet") as local:
        assert pq.read_table(local).equals(DOCS)
    assert stat(folder.uri("stats/b.json")).size == folder.size("stats/b.json")
    folder.remove("stats/b.json")
    folder.remove("stats/b.json")  # absent: nothing happens
    assert not folder.exists("stats/b.json")
    folder.move("docs/a.parquet", "_quarantine/docs-a.parquet")
    assert not folder.exists("docs/a.parquet") and pq.read_table(
        folder.open_input_file("_quarantine/docs-a.parquet")
    ).equals(DOCS)


def test_parquet_writer_commits_atomically(folder):
    with folder.parquet_writer("docs/a.parquet", DOCS.schema, compression="zstd") as writer:
        writer.write_table(DOCS.slice(0, 2))
        assert not folder.exists("docs/a.parquet")  # nothing under the final name before the commit
        writer.write_table(DOCS.slice(2))
    assert pq.read_table(folder.open_input_file("docs/a.parquet")).equals(DOCS)

    with pytest.raises(RuntimeError, match="reader failed"):
        with folder.parquet_writer("docs/b.parquet", DOCS.schema) as writer:
            writer.write_table(DOCS)
            raise RuntimeError("reader failed mid-input")
    assert _everything(folder) == ["docs/a.parquet"]  # no object, no temporary name

    with pytest.raises(ValueError):
        with folder.open_output("stats/c.json") as f:
            f.write(b'{"kept": ')
            raise ValueError("stats could not be encoded")
    assert _everything(folder) == ["docs/a.parquet"]

    with folder.parquet_writer("rejected/a.parquet", DOCS.schema):
        pass  # an input whose rows were all kept still gets its (empty) rejected file
    assert pq.read_table(folder.open_input_file("rejected/a.parquet")).num_rows == 0


def test_fingerprint_follows_the_listing(folder):
    folder.write_table("docs/a.parquet", DOCS)
    folder.write_table("docs/b.parquet", DOCS.slice(0, 1))
    first = folder.fingerprint(pattern="docs/*.parquet", extra={"stage": "minhash"})
    assert (
        folder.fingerprint(pattern="docs/*.parquet", extra={"stage": "minhash"}) == first
    )  # nothing changed
    assert folder.fingerprint(pattern="docs/*.parquet", extra={"stage": "exact"}) != first
    by_name = folder.fingerprint(["docs/a.parquet", "docs/b.parquet"], extra={"stage": "minhash"})
    assert by_name == first  # the same listing, named or matched
    assert listing_fingerprint(folder.list("docs/*.parquet"), {"stage": "minhash"}) == first

    folder.write_table("docs/c.parquet", DOCS)  # a new file
    added = folder.fingerprint(pattern="docs/*.parquet", extra={"stage": "minhash"})
    assert added != first
    assert folder.fingerprint(["docs/a.parquet", "docs/b.parquet"], extra={"stage": "minhash"}) == first

    folder.write_table("docs/b.parquet", DOCS)  # b changes size
    assert folder.fingerprint(pattern="docs/*.parquet", extra={"stage": "minhash"}) not in (first, added)
    assert folder.fingerprint(["docs/a.parquet", "docs/b.parquet"], extra={"stage": "minhash"}) != first


def test_fingerprint_never_reads_the_files(folder, monkeypatch):
    folder.write_table("docs/a.parquet", DOCS)
    before = folder.fingerprint(pattern="docs/*.parquet")

    def refuse(*args, **kwargs):
        raise AssertionError("a fingerprint read a file")

    monkeypatch.setattr(Folder, "open_input", refuse)
    monkeypatch.setattr(Folder, "open_input_file", refuse)
    monkeypatch.setattr(Folder, "read_bytes", refuse)
    assert folder.fingerprint(pattern="docs/*.parquet") == before


def test_clean_tmp_removes_only_what_a_killed_writer_left(tmp_path):
    folder = Folder(str(tmp_path))
    folder.write_json("stats/a.json", {"kept": 1})
    stage = folder.stage("stats/b.json")  # a writer killed before its commit
    with open(stage.tmp, "wb") as f:
        f.write(b'{"ke')
    (tmp_path / "stats" / ".lock").write_text("pid 1")
    assert sorted(os.listdir(tmp_path / "stats")) == sorted([".lock", "a.json", os.path.basename(stage.tmp)])
    assert folder.clean_tmp("stats") == 1
    assert sorted(os.listdir(tmp_path / "stats")) == [".lock", "a.json"]


def test_local_names_that_are_not_utf8(tmp_path):
    """A local file name with undecodable bytes (which pyarrow's LocalFileSystem cannot name) is listed, sized
    and fingerprinted like any other."""
    name = os.fsdecode(b"bad\xffname.txt")
    with open(os.path.join(str(tmp_path), name), "wb") as f:
        f.write(b"some text")
    folder = Folder(str(tmp_path))
    assert [o.path for o in folder.list()] == [os.path.join(str(tmp_path), name)]
    assert folder.size(name) == 9 and folder.exists(name)
    fp = folder.fingerprint()
    time.sleep(0.01)
    with open(os.path.join(str(tmp_path), name), "ab") as f:
        f.write(b" more")
    assert folder.fingerprint() != fp


def test_a_file_renamed_while_listing_is_left_out_not_an_error(tmp_path, monkeypatch):
    """Another task renames its temporary file into place between the scan of a folder and the stat of that entry
    (the MinHash index tasks list their work folder while other tasks write markers): the listing goes on."""
    root = Folder(str(tmp_path))
    root.write_bytes("_done/a/00001.json", b"{}")
    tmp = tmp_path / "_done" / "a" / ".00002.json.tmp-deadbeef"
    tmp.write_bytes(b"{}")
    real_scandir = os.scandir

    def scandir_then_rename(path):
        entries = list(real_scandir(path))
        if os.path.basename(path) == "a" and tmp.exists():
            os.replace(tmp, tmp_path / "_done" / "a" / "00002.json")  # the writer commits after the scan
        return iter(entries)

    monkeypatch.setattr(os, "scandir", scandir_then_rename)
    names = [os.path.basename(o.path) for o in root.list(hidden=True)]
    assert names == ["00001.json"]  # the renamed temp file is skipped; the committed marker was not yet seen
