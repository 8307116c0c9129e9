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
from dedup.minhash import MinHashConfig
from dedup.text import jaccard, shingle_set
from dedup.workflow import find_near_duplicates
from tests.helpers.faults import dying_after

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


def _files(work: str, folder: str) -> int:
    return sum(len(names) for _, _, names in os.walk(os.path.join(work, folder)))


def test_partitions_and_tasks_change_the_files_not_the_pairs_nor_the_clusters(tmp_path):
    folder = str(tmp_path / "in")
    docs = _planted(folder)
    one = find_near_duplicates([folder], str(tmp_path / "one"), MinHashConfig(partitions=1, tasks=1))
    assert one.stats["verify_partitions"] == 1
    assert one.stats["removed"] > 80 and one.stats["largest_cluster"] >= 12
    reference = _verified(one.work)
    for r, m in ((4, 3), (7, 2)):
        cut = find_near_duplicates(
            [folder], str(tmp_path / f"cut{r}x{m}"), MinHashConfig(partitions=r, tasks=m)
        )
        assert (cut.stats["verify_partitions"], cut.stats["tasks"]) == (r, m)
        # files fixed by the settings, not by the documents: removed rows by (file group x partition), one doc
        # table per group, verified pairs and clusters per partition, and the units' markers
        assert _files(cut.work, "doctable") == m and _files(cut.work, "removed") <= m * r
        assert _files(cut.work, "") <= m * r + 4 * m + 8 * r + 4
        assert not {"bands", "pairs", "labels", "members"} & set(os.listdir(cut.work))  # finished passes: gone
        assert _verified(cut.work) == reference
        assert cut.duplicates.select(KEY).to_pylist() == one.duplicates.select(KEY).to_pylist()
        assert not os.path.exists(os.path.join(cut.work, "verify", "texts"))  # text copies removed when done
        assert not os.path.exists(os.path.join(cut.work, "cc"))  # component rounds removed when done
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
    cfg = MinHashConfig(partitions=4, executor="local")  # in this process: the kills are patched functions
    fresh = find_near_duplicates([folder], str(tmp_path / "fresh"), cfg)

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


def test_ray_executor_finds_the_same_duplicates_as_local(tmp_path, ray_local):
    folder = str(tmp_path / "in")
    _planted(folder, n=200, parts=2, seed=3)
    local = find_near_duplicates([folder], str(tmp_path / "local"), MinHashConfig(partitions=4))
    remote = find_near_duplicates(
        [folder], str(tmp_path / "ray"), MinHashConfig(partitions=4, executor="ray")
    )
    assert remote.stats["verify_partitions"] > 1  # the verify units ran as Ray tasks too
    assert local.stats["removed"] > 30
    assert remote.duplicates.select(KEY).to_pylist() == local.duplicates.select(KEY).to_pylist()
