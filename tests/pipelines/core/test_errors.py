"""Environment errors fail the input (no marker, a rerun retries it); data errors stay recorded rejections."""

from __future__ import annotations

import builtins
import bz2
import errno
import gzip
import json
import os
import sys
import tarfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core import storage
from pipelines.core.errors import is_environment_error
from pipelines.core.layout import input_key
from pipelines.core.process import process_input
from pipelines.core.recipe import Reader, Recipe
from pipelines.core.steps import Step, StepResult, set_column, texts
from pipelines.runner import InputsFailed, run_recipe
from pipelines.sources.registry import build_recipe, load_config
from tests.helpers.paths import FIXTURES


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the real exception a library raises
        return exc
    raise AssertionError("did not raise")


def test_real_library_data_errors_are_data_and_machine_errors_are_environment(tmp_path):
    cut = gzip.compress(b"x" * 10_000)[:-12]
    (tmp_path / "t.tar").write_bytes(b"not a tar at all" * 40)
    data_errors = [
        _raised(lambda: gzip.decompress(b"\x1f\x8b\x08garbage")),  # BadGzipFile is an OSError subclass
        _raised(lambda: gzip.decompress(cut)),  # EOFError
        _raised(lambda: zlib.decompress(b"garbage")),
        _raised(lambda: bz2.decompress(b"BZh9garbage" * 4)),  # an OSError without errno
        _raised(lambda: tarfile.open(tmp_path / "t.tar")),
        _raised(lambda: b"\xff\xfe\xfa".decode("utf-8")),
        _raised(lambda: ET.fromstring("<a><b></a>")),
        _raised(lambda: int("12x")),
        _raised(lambda: open(tmp_path / "missing.txt")),  # a dangling input: rerunning would not help
        _raised(lambda: open(tmp_path)),  # IsADirectoryError
    ]
    for exc in data_errors:
        assert not is_environment_error(exc), repr(exc)
    environment_errors = [
        _raised(lambda: __import__("winnow_no_such_module_for_test")),
        MemoryError(),
        PermissionError(errno.EACCES, "Permission denied", "/data/in.warc.gz"),
        OSError(errno.EIO, "Input/output error"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.ESTALE, "Stale file handle"),
        storage.StorageError("s3://bucket/key: GET failed"),
        RuntimeError("CUDA error: out of memory"),  # how torch reports a full GPU
    ]
    for exc in environment_errors:
        assert is_environment_error(exc), repr(exc)
    try:  # a reader that wraps the machine's error in its own keeps it as the cause
        raise ValueError("cannot read member") from OSError(errno.EIO, "Input/output error")
    except ValueError as exc:
        assert is_environment_error(exc)


@pytest.fixture
def books(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("pg90001.txt", "pg90002.txt", "not-gutenberg.txt"):
        (inputs / name).write_bytes((open(os.path.join(FIXTURES, "books", name), "rb")).read())
    config = {**load_config("books"), "corpus_stages": {"book_dedup": {"enabled": False}}}
    reference = tmp_path / "reference"
    run_recipe(build_recipe("books", config), str(inputs), str(reference), executor="local", progress=False)
    return inputs, config, reference


def _rows(out, source: str, kind: str) -> list[tuple]:
    folder = out / source / kind
    rows = [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return sorted((r["id"], r["text"], r.get("reason")) for r in rows)


@pytest.mark.parametrize("err", [errno.EACCES, errno.EIO])
def test_an_unreadable_input_fails_without_marker_and_the_rerun_reads_it(books, tmp_path, monkeypatch, err):
    """As root chmod 000 changes nothing, so the kernel's answer is injected at ``open`` for one input."""
    inputs, config, reference = books
    victim = str(inputs / "pg90002.txt")
    real_open = builtins.open

    def failing_open(file, *args, **kwargs):
        if os.fspath(file) == victim if isinstance(file, str | os.PathLike) else False:
            raise (PermissionError if err == errno.EACCES else OSError)(err, os.strerror(err), victim)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    out = tmp_path / "out"
    with pytest.raises(InputsFailed) as failed:
        run_recipe(build_recipe("books", config), str(inputs), str(out), executor="local", progress=False)
    assert list(failed.value.failures) == [victim]
    assert os.strerror(err) in failed.value.failures[victim] and victim in str(failed.value)
    assert not (out / "books" / "_done" / f"{input_key(victim)}.json").exists()
    assert len(os.listdir(out / "books" / "_done")) == 2  # the other inputs completed
    summary = json.loads((out / "books" / "summary.json").read_text())
    assert list(summary["failed"]) == [victim] and summary["inputs"] == 2
    monkeypatch.setattr(builtins, "open", real_open)  # the disk or the permissions are fixed
    result = run_recipe(
        build_recipe("books", config), str(inputs), str(out), executor="local", progress=False
    )
    assert (result.processed, result.already_done) == (1, 2)
    for kind in ("docs", "rejected"):
        assert _rows(out, "books", kind) == _rows(reference, "books", kind)
    assert "failed" not in json.loads((out / "books" / "summary.json").read_text())


def test_a_missing_module_fails_the_inputs_and_the_cli_exits_non_zero(tmp_path, monkeypatch):
    """mwparserfromhell uninstalled: every Wikipedia input fails (no marker), and after installing it the rerun
    produces the documents (issue #15: it used to be recorded `read_error:ModuleNotFoundError` and marked done)."""
    from pipelines.cli import main

    inputs = os.path.join(FIXTURES, "wikipedia", "enwiki-sample.xml")
    out = tmp_path / "out"
    # the modules an earlier test imported come back as the same objects for the rerun: a fresh import next to the
    # already loaded C tokenizer would mix two sets of token classes ("_handle_token() got unexpected TemplateOpen")
    loaded = {m: mod for m, mod in sys.modules.items() if m == "mwparserfromhell" or m.startswith("mwparserfromhell.")}
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(
        sys.modules, "mwparserfromhell", None
    )  # `import mwparserfromhell` -> ModuleNotFoundError
    args = [
        "run",
        "--source",
        "wikipedia",
        "--input",
        inputs,
        "--output",
        str(out),
        "--executor",
        "local",
        "--no-progress",
    ]
    assert main(args) == 1
    assert not os.listdir(out / "wikipedia" / "_done")
    assert not list((out / "wikipedia" / "docs").glob("*.parquet"))
    monkeypatch.delitem(sys.modules, "mwparserfromhell")
    sys.modules.update(loaded)  # "installed again"
    assert main(args) == 0
    docs = _rows(out, "wikipedia", "docs")
    assert len(docs) >= 2 and all(text.strip() for _, text, _ in docs)


@dataclass
class LinesReader(Reader):
    """One document per line of a file written in UTF-8 with surrogate escapes (how Python spells undecodable bytes
    of file names, which readers pass on in ids and text)."""

    def read(self, path):
        with open(path, "rb") as f:
            for i, line in enumerate(f.read().splitlines()):
                text = line.decode("utf-8", "surrogateescape")
                yield {"id": f"line-{i}:{text[:12]}", "text": text, "meta": {"name": text[:12]}}


@dataclass
class ShoutOrFail(Step):
    """A transform that raises on documents containing ``%%`` (as a parser raises on one bad document)."""

    kind: ClassVar[str] = "transform"

    def process(self, batch: pa.Table) -> StepResult:
        out = []
        for t in texts(batch):
            if "%%" in t:
                raise ValueError(f"cannot parse {t[:20]!r}")
            out.append(t.upper())
        return StepResult(set_column(batch, "text", out, pa.large_string()), None, len(out))


def test_a_row_arrow_refuses_and_a_row_a_step_fails_on_are_recorded_and_the_batch_goes_on(tmp_path):
    src = tmp_path / "names.txt"
    src.write_bytes(b"report-2024.txt\ncaf\xe9-menu.txt\nnotes %% draft\nreadme.md\n")
    recipe = Recipe("toy", LinesReader(batch_size=8), [ShoutOrFail()])
    stats = process_input(recipe, str(src), str(tmp_path / "out"))
    assert (stats["read"], stats["kept"], stats["rejected"]) == (4, 2, 2)
    assert stats["rejected_by_reason"] == {"schema:invalid_id": 1, "shoutorfail:error:ValueError": 1}
    key = input_key(str(src))
    docs = pq.read_table(tmp_path / "out" / "toy" / "docs" / f"{key}.parquet").column("text").to_pylist()
    assert docs == ["REPORT-2024.TXT", "README.MD"]
    rej = pq.read_table(tmp_path / "out" / "toy" / "rejected" / f"{key}.parquet").to_pylist()
    by_reason = {r["reason"]: r for r in rej}
    assert by_reason["schema:invalid_id"]["text"] == "caf\\udce9-menu.txt"  # the bad byte stays visible
    assert by_reason["shoutorfail:error:ValueError"]["text"] == "notes %% draft"


@dataclass
class LengthOrFail(Step):
    """A score step (adds ``n_chars``) whose model raises on documents containing ``%%``."""

    kind: ClassVar[str] = "score"

    def adds(self):
        return {"n_chars": pa.int64()}

    def process(self, batch: pa.Table) -> StepResult:
        if any("%%" in t for t in texts(batch)):
            raise ValueError("tokenizer failed")
        return StepResult(set_column(batch, "n_chars", [len(t) for t in texts(batch)], pa.int64()))


def test_a_score_step_failing_on_one_row_rejects_that_row_without_breaking_its_kind(tmp_path):
    """The runner's ``<step>:error:`` rejection is not the score step rejecting rows (which check_kind forbids)."""
    src = tmp_path / "docs.txt"
    src.write_bytes(b"alpha beta\nnotes %% draft\ngamma\n")
    stats = process_input(
        Recipe("toy", LinesReader(batch_size=8), [LengthOrFail()]), str(src), str(tmp_path / "o")
    )
    assert (stats["kept"], stats["rejected_by_reason"]) == (2, {"lengthorfail:error:ValueError": 1})
    docs = pq.read_table(tmp_path / "o" / "toy" / "docs" / f"{input_key(str(src))}.parquet")
    assert docs.column("n_chars").to_pylist() == [10, 5]
