"""Incremental MinHash dedup (cron): A, then A+B equals one run over B with A's survivors as references, and the
second run reads A's index and A's candidate rows only."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup import corpus, incremental, minhash, minhash_index
from dedup.evalset import make_documents, real_paragraphs
from dedup.stages import MinHashDedupStage
from pipelines.core.corpus_stage import build_inputs, run_stage, run_stages
from pipelines.core.folder import Folder
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from tests.helpers.paths import CORPUS, corpus_path

SETTINGS = {"executor": "local", "partitions": 4, "tasks": 2}


@pytest.fixture(scope="module")
def docs() -> dict[str, list]:
    corpus_path("wikipedia")
    # 30% planted near-duplicates (word edits 0-15%), shuffled: pairs fall within A, within B and across
    d = make_documents(real_paragraphs(CORPUS), 500, dup_frac=0.3, seed=3, paras_per_doc=(2, 4))
    order = np.random.default_rng(5).permutation(500).tolist()
    return {k: [v[i] for i in order] for k, v in d.items()}


def _write(folder, docs: dict[str, list], lo: int, hi: int, parts: int, prefix: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    names = []
    for i, b in enumerate(np.array_split(np.arange(lo, hi), parts)):
        rows = [{"id": docs["id"][j], "source": "cc", "text": docs["text"][j]} for j in b.tolist()]
        name = f"{prefix}{i}.parquet"
        pq.write_table(table_from_rows(rows, CORE_SCHEMA), os.path.join(folder, name))
        names.append(name)
    return names


def _ids(folder, names=None) -> set[str]:
    names = names or sorted(n for n in os.listdir(folder) if n.endswith(".parquet"))
    return {i for n in names for i in pq.read_table(os.path.join(folder, n)).column("id").to_pylist()}


def _stage(**kw) -> MinHashDedupStage:
    return MinHashDedupStage(settings=dict(SETTINGS), **kw)


def _at_once(tmp_path, docs, a_survivors: str, lo: int, hi: int, prefix: str) -> set[str]:
    """The at-once rule: one full MinHash run over the new docs with the earlier survivors as references."""
    ref = tmp_path / f"ref-{prefix}"
    names = _write(ref / "docs", docs, lo, hi, 2, prefix)
    stage = MinHashDedupStage(settings={**SETTINGS, "references": [a_survivors]}, incremental=False)
    run_stage(stage, str(ref))
    return _ids(ref / "docs", names)


def test_a_then_a_plus_b_equals_b_against_a_survivors_and_reads_only_candidates(tmp_path, docs, monkeypatch):
    src = tmp_path / "cc"
    a_names = _write(src / "docs", docs, 0, 350, 3, "a")
    first = run_stage(_stage(), str(src))
    assert first["removed"] > 10 and first["index_generations"] == 1
    a_kept = _ids(src / "docs")
    shutil.copytree(src / "docs", tmp_path / "a-survivors")
    assert len(a_kept) == 350 - first["removed"]

    b_names = _write(src / "docs", docs, 350, 500, 2, "b")
    texts_read: list[str] = []
    rows_read: dict[str, list[int]] = {}
    real_batches, real_rows = minhash.iter_batches, corpus.read_rows

    def batches(path, *a, **k):
        texts_read.append(os.path.basename(path))
        return real_batches(path, *a, **k)

    def rows(path, r, cols):
        rows_read.setdefault(os.path.basename(path), []).extend(np.asarray(r).tolist())
        return real_rows(path, r, cols)

    monkeypatch.setattr(minhash, "iter_batches", batches)
    monkeypatch.setattr(corpus, "read_rows", rows)  # the locate task's reads
    second = run_stage(_stage(), str(src))
    monkeypatch.undo()

    assert second["incremental"] and second["new_files"] == 2 and second["index_generations"] == 2
    assert sorted(set(texts_read)) == b_names  # signatures of B only
    read_from_a = sum(len(v) for n, v in rows_read.items() if n in a_names)
    assert set(rows_read) <= set(a_names) and read_from_a == second["old_candidates"]
    assert 0 < read_from_a < len(a_kept) / 4  # a handful of A rows, the candidates, not A's text
    assert _ids(src / "docs", a_names) == a_kept  # earlier survivors stay
    expected = _at_once(tmp_path, docs, str(tmp_path / "a-survivors"), 350, 500, "b")
    assert _ids(src / "docs", b_names) == expected
    # close planted B copies (<= 0.5% of words edited) of kept A documents went
    crossed = {
        docs["id"][i] for i in range(350, 500) if docs["dup_of"][i] in a_kept and docs["rate"][i] <= 0.005
    }
    assert crossed and not crossed & _ids(src / "docs", b_names)

    # a third run with nothing new does nothing
    listing = os.listdir(src / "docs")
    mtimes = {n: os.stat(src / "docs" / n).st_mtime_ns for n in listing}
    assert run_stage(_stage(), str(src)).get("up_to_date")
    assert _stage().run(str(src), build_inputs([str(src / "docs")]), None)["new_files"] == 0
    assert {n: os.stat(src / "docs" / n).st_mtime_ns for n in listing} == mtimes


def test_compaction_and_a_killed_run_keep_results(tmp_path, docs, monkeypatch):
    """Three runs (A, +B, +C): with compaction after every run, and with a run killed after its removal, the
    survivors equal those of the plain incremental runs; the compacted index drops documents no longer in docs/."""
    roots = {k: tmp_path / k for k in ("plain", "compact", "killed")}
    for k, root in roots.items():
        _write(root / "docs", docs, 0, 250, 2, "a")
        run_stage(_stage(index_generations_max=1 if k == "compact" else 8), str(root))
    for lo, hi, prefix in ((250, 380, "b"), (380, 500, "c")):
        for k, root in roots.items():
            _write(root / "docs", docs, lo, hi, 2, prefix)
            if k == "killed":
                real = minhash_index.index_keys_task

                def dying(args):
                    raise KeyboardInterrupt("killed after the removal")

                monkeypatch.setattr(minhash_index, "index_keys_task", dying)
                with pytest.raises(KeyboardInterrupt):
                    run_stage(_stage(), str(root))
                monkeypatch.setattr(minhash_index, "index_keys_task", real)
            out = run_stage(_stage(index_generations_max=1 if k == "compact" else 8), str(root))
            assert out["incremental"]
    plain = _ids(roots["plain"] / "docs")
    assert _ids(roots["compact"] / "docs") == plain == _ids(roots["killed"] / "docs")
    state = incremental.load_state(incremental.index_root(str(roots["compact"])))
    assert len(state["gens"]) == 1 and state["compacted_docs"] == len(plain) - 0
    assert len(incremental.load_state(incremental.index_root(str(roots["plain"])))["gens"]) == 3


def test_chain_of_stages_takes_the_incremental_path_when_inputs_are_added(tmp_path, docs):
    """The cron path (run_recipe → run_stages with inputs written): the MinHash stage only works on new files."""
    src = tmp_path / "cc"
    _write(src / "docs", docs, 0, 300, 2, "a")
    first = run_stages([_stage()], str(src), inputs_written=True)["minhash"]
    _write(src / "docs", docs, 300, 400, 1, "b")
    second = run_stages([_stage()], str(src), inputs_written=True)["minhash"]
    assert "incremental" not in first and second["incremental"] and second["docs"] == 100
    state = json.load(open(src / "_dedup" / "minhash-index" / "state.json"))
    assert sorted(state["covered"]) == ["a0.parquet", "a1.parquet", "b0.parquet"]
    # a covered file rewritten with more rows than the index recorded (an input redone): a full run, new index
    _write(src / "docs", docs, 300, 500, 1, "b")
    third = run_stages([_stage()], str(src), inputs_written=True)["minhash"]
    assert "incremental" not in third and third["docs"] == len(_ids(src / "docs")) + third["removed"]
    assert len(incremental.load_state(incremental.index_root(str(src)))["gens"]) == 1


class _CountingFile:
    """A file object that counts the bytes read through it (what a lookup costs on storage)."""

    def __init__(self, f, counter: list[int]):
        self._f, self._counter = f, counter

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._counter[0] += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def _count_reads(monkeypatch) -> list[int]:
    counter = [0]
    real = Folder.open_input_file
    monkeypatch.setattr(
        Folder, "open_input_file", lambda self, name: _CountingFile(real(self, name), counter)
    )
    return counter


def test_lookup_reads_the_row_groups_of_the_new_keys_only(tmp_path, monkeypatch):
    """A key file of 1M band keys (uniform 64-bit hashes, as band keys are; 977 row groups): looking up 10 keys
    (5 in the file) reads at most 10 row groups, under 5% of the file's bytes, footer included; 60k keys read
    every group.  Both return exactly the rows a full read filtered by ``isin`` returns."""
    rng = np.random.default_rng(11)
    n = 1_000_000
    index = pa.table(
        {
            "band": rng.integers(0, 18, n).astype(np.uint8),
            "key": rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True),
            "gid": (rng.integers(0, 40, n).astype(np.uint64) << np.uint64(32))
            | rng.integers(0, 9000, n).astype(np.uint64),
        }
    )
    gen = str(tmp_path / "gen-00000")
    minhash_index.write_keys(index, gen, 0)
    paths = [minhash_index.keys_path(gen, 0), minhash_index.rows_path(gen, 0)]
    size = sum(os.path.getsize(p) for p in paths)
    groups = pq.ParquetFile(paths[0]).metadata.num_row_groups
    assert groups == -(-n // minhash_index.KEY_ROW_GROUP)
    present = rng.choice(index.column("key").to_numpy(), 5, replace=False)
    absent = rng.integers(0, 2**64 - 1, 5, dtype=np.uint64, endpoint=True)
    many = np.r_[
        rng.choice(index.column("key").to_numpy(), 30_000, replace=False),
        rng.integers(0, 2**63, 30_000).astype(np.uint64),
    ]

    def brute(wanted: np.ndarray) -> list[tuple]:
        t = index.filter(pa.array(np.isin(index.column("key").to_numpy(), wanted)))
        return sorted(zip(*(t.column(c).to_pylist() for c in ("band", "key", "gid")), strict=True))

    counter = _count_reads(monkeypatch)
    for wanted, small in ((np.r_[present, absent], True), (many, False)):
        wanted = np.unique(wanted)
        counter[0], seen = 0, Counter()
        minhash_index._footer.cache_clear()
        got = minhash_index.lookup(gen, 0, wanted, seen)
        assert sorted(
            zip(*(got.column(c).to_pylist() for c in ("band", "key", "gid")), strict=True)
        ) == brute(wanted)
        assert seen["row_groups"] == groups and seen["bytes"] == size
        # the counted reads are about the ones reported (pyarrow also reads the last 64 KiB to find the footer)
        assert seen["bytes_read"] <= counter[0] <= seen["bytes_read"] + 65536 + 0.01 * size
        if small:
            assert got.num_rows >= 5 and seen["row_groups_read"] <= 10
            assert counter[0] < 0.05 * size
        else:
            assert seen["row_groups_read"] == groups
    # the footer is cached per file (path, size, mtime): a second lookup reads row groups only
    counter[0], seen = 0, Counter()
    minhash_index.lookup(gen, 0, np.unique(present), seen)
    assert 0 < counter[0] < 0.05 * size and seen["bytes_read"] < 0.05 * size


def test_merge_from_keeps_generations_logarithmic():
    """Equal increments merge as a binary counter: after k runs, as many generations as k has one bits, each at
    least twice the next newer one; ``most`` caps the count by merging the newest."""
    sizes: list[int] = []
    for k in range(1, 200):
        sizes.append(100)
        start = minhash_index.merge_from(sizes, 64)
        sizes = sizes[:start] + ([sum(sizes[start:])] if start < len(sizes) else [])
        assert len(sizes) == bin(k).count("1") <= int(np.log2(k)) + 1
        assert all(a >= 2 * b for a, b in zip(sizes, sizes[1:], strict=False))
    assert minhash_index.merge_from([800, 400, 200, 100], 64) == 4  # nothing to merge
    assert minhash_index.merge_from([800, 400, 200, 100], 3) == 2  # the two newest
    assert minhash_index.merge_from([800, 300, 200, 100, 100], 64) == 1  # 100+100+200+300 >= 300, < 800
    assert minhash_index.merge_from([500], 1) == 1


def test_small_increment_reads_a_small_part_of_a_large_index(tmp_path, docs, monkeypatch):
    """A run adding 4 documents to an index of ~390 (row groups of 8 keys, so the index has hundreds of them)
    reads under 15% of the index's row groups, and removes what the at-once rule removes."""
    monkeypatch.setattr(minhash_index, "KEY_ROW_GROUP", 8)
    src = tmp_path / "cc"
    _write(src / "docs", docs, 0, 420, 3, "a")
    run_stage(_stage(), str(src))
    shutil.copytree(src / "docs", tmp_path / "a-survivors")
    a_kept = _ids(src / "docs")
    copies = [i for i in range(420, 500) if docs["dup_of"][i] in a_kept and docs["rate"][i] <= 0.005][:2]
    others = [i for i in range(420, 500) if docs["dup_of"][i] is None][:2]
    assert len(copies) == 2 and len(others) == 2
    pick = {k: [v[i] for i in copies + others] for k, v in docs.items()}
    b_names = _write(src / "docs", pick, 0, 4, 1, "b")
    second = run_stage(_stage(), str(src))
    assert second["incremental"] and second["docs"] == 4
    assert second["index_row_groups"] > 200
    assert 0 < second["index_row_groups_read"] < 0.15 * second["index_row_groups"]
    assert second["index_bytes_read"] < second["index_bytes"]
    assert _ids(src / "docs", b_names) == _at_once(tmp_path, pick, str(tmp_path / "a-survivors"), 0, 4, "b")
    assert _ids(src / "docs", b_names) == {pick["id"][2], pick["id"][3]}  # the two close copies of A went
