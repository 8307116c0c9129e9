"""MinHash dedup with bounded memory: verification cut into partitions gives the same pairs and clusters as one
partition, a run killed between partitions resumes to the same survivors, and the Ray executor agrees with local."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.corpus import split_gid
from dedup.evalset import make_documents
from dedup.minhash import MinHashConfig, partitions_for
from dedup.text import jaccard, shingle_set
from dedup.workflow import find_near_duplicates

KEY = ["id", "cluster_id", "kept"]


def _planted(folder: str, n: int = 400, parts: int = 3, seed: int = 11) -> dict[str, list]:
    """Synthetic documents (random-word paragraphs) with 30% planted near-duplicates, plus one family of 12 light
    edits of one document (a component bigger than a small verify budget), in ``parts`` files."""
    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(3000)]
    paras = [" ".join(rng.choice(vocab, int(rng.integers(15, 40)))) for _ in range(2000)]
    docs = make_documents(paras, n, dup_frac=0.3, seed=seed)
    base = docs["text"][0].split()
    for k in range(12):
        words = list(base)
        for i in rng.choice(len(words), max(1, len(words) // 60), replace=False):
            words[i] = f"edit{k}"
        docs["id"].append(f"family-{k:02d}")
        docs["text"].append(" ".join(words))
    os.makedirs(folder, exist_ok=True)
    step = -(-len(docs["id"]) // parts)
    for i in range(parts):
        sl = slice(i * step, (i + 1) * step)
        pq.write_table(
            pa.table({"id": docs["id"][sl], "text": docs["text"][sl]}), os.path.join(folder, f"p{i}.parquet")
        )
    return docs


def _verified(work: str) -> list[tuple]:
    t = pq.read_table(os.path.join(work, "verified")).sort_by([("a", "ascending"), ("b", "ascending")])
    return list(zip(*(t.column(c).to_pylist() for c in ("a", "b", "jaccard", "kept")), strict=True))


def test_verify_partitions_give_the_same_pairs_and_clusters_as_one(tmp_path):
    folder = str(tmp_path / "in")
    docs = _planted(folder)
    one = find_near_duplicates([folder], str(tmp_path / "one"), MinHashConfig(partitions=4))
    assert one.stats["verify_partitions"] == 1
    assert one.stats["removed"] > 80 and one.stats["largest_cluster"] >= 12
    reference = _verified(one.work)
    # tiny budgets: whole components packed a few to a partition, or every component cut pair by pair
    for budget in (6000, 1):
        cut = find_near_duplicates(
            [folder], str(tmp_path / f"cut{budget}"), MinHashConfig(partitions=4, verify_chars=budget)
        )
        assert cut.stats["verify_partitions"] > 5
        assert _verified(cut.work) == reference
        assert cut.duplicates.select(KEY).to_pylist() == one.duplicates.select(KEY).to_pylist()
        assert not os.path.exists(os.path.join(cut.work, "verify", "texts"))  # text copies removed when done
    # each partition read the right texts: its Jaccards are those of the documents' own shingle sets
    files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
    text = [pq.read_table(p).column("text").to_pylist() for p in files]
    for a, b, j, _ in reference[::7]:
        (fa, fb), (ra, rb) = split_gid(np.array([a, b], np.uint64))
        assert j == jaccard(shingle_set(text[fa][ra]), shingle_set(text[fb][rb]))
    assert len(docs["id"]) == sum(len(t) for t in text)


def test_a_run_killed_between_verify_units_resumes_to_the_same_survivors(tmp_path, monkeypatch):
    import dedup.cluster as cl

    folder = str(tmp_path / "in")
    _planted(folder)
    cfg = MinHashConfig(partitions=4, verify_chars=6000)
    fresh = find_near_duplicates([folder], str(tmp_path / "fresh"), cfg)

    def dying_after(real, n):
        calls = {"n": 0}

        def task(args):
            calls["n"] += 1
            if calls["n"] > n:
                raise KeyboardInterrupt("killed")
            return real(args)

        return task

    resumed = str(tmp_path / "resumed")
    # killed in the gather pass (after 1 of 3 files), then in the verify pass (after 3 partitions)
    monkeypatch.setattr(cl, "gather_task", dying_after(cl.gather_task, 1))
    with pytest.raises(KeyboardInterrupt):
        find_near_duplicates([folder], resumed, cfg)
    monkeypatch.undo()
    work = glob.glob(os.path.join(resumed, "minhash-*"))[0]
    assert len(os.listdir(os.path.join(work, "_done", "verify_gather"))) == 1
    monkeypatch.setattr(cl, "verify_task", dying_after(cl.verify_task, 3))
    with pytest.raises(KeyboardInterrupt):
        find_near_duplicates([folder], resumed, cfg)
    monkeypatch.undo()
    assert len(os.listdir(os.path.join(work, "_done", "verify_part"))) == 3
    assert not os.path.exists(os.path.join(work, "_done", "verify", "all.json"))
    done = find_near_duplicates([folder], resumed, cfg)
    assert done.work == work
    assert done.duplicates.select(KEY).to_pylist() == fresh.duplicates.select(KEY).to_pylist()
    assert _verified(work) == _verified(fresh.work)


def test_bucket_partitions_grow_with_the_corpus_and_change_nothing(tmp_path):
    assert partitions_for(400_000, 14, 16, 1_000_000) == 16
    assert partitions_for(10_000_000, 14, 16, 1_000_000) == 140
    folder = str(tmp_path / "in")
    _planted(folder, n=200, parts=2, seed=5)
    few = find_near_duplicates([folder], str(tmp_path / "few"), MinHashConfig(partitions=2))
    many = find_near_duplicates(
        [folder], str(tmp_path / "many"), MinHashConfig(partitions=2, partition_rows=500)
    )
    assert (few.stats["partitions"], many.stats["partitions"]) == (2, -(-212 * many.stats["bands"] // 500))
    assert many.duplicates.select(KEY).to_pylist() == few.duplicates.select(KEY).to_pylist()


def test_ray_executor_finds_the_same_duplicates_as_local(tmp_path, ray_local):
    folder = str(tmp_path / "in")
    _planted(folder, n=200, parts=2, seed=3)
    local = find_near_duplicates([folder], str(tmp_path / "local"), MinHashConfig(partitions=4))
    remote = find_near_duplicates(
        [folder], str(tmp_path / "ray"), MinHashConfig(partitions=4, verify_chars=20_000, executor="ray")
    )
    assert remote.stats["verify_partitions"] > 1  # the verify units ran as Ray tasks too
    assert local.stats["removed"] > 30
    assert remote.duplicates.select(KEY).to_pylist() == local.duplicates.select(KEY).to_pylist()
