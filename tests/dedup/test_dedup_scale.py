"""Dedup passes that scale out: distributed components, the survivor rule, removal that resumes."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.components import components
from dedup.corpus import unit
from dedup.minhash import MinHashConfig
from dedup.workflow import find_near_duplicates
from pipelines.core.corpus_stage import run_stage
from pipelines.core.executor import LocalExecutor, TaskFailed
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from tests.helpers.faults import dying_after

KEY = ["id", "cluster_id", "kept"]


def _random_graph(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random sparse edges plus long paths in shuffled node order (components of large diameter)."""
    a = rng.integers(0, n, n // 2)
    b = rng.integers(0, n, n // 2)
    path = rng.permutation(n)[: n // 3]
    a = np.concatenate([a, path[:-1]])
    b = np.concatenate([b, path[1:]])
    keep = a != b
    return a[keep], b[keep]


@pytest.mark.parametrize("one_task", [False, True], ids=["star-rounds", "one-task"])
def test_distributed_components_agree_with_scipy(tmp_path, one_task):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(4)
    n = 3000
    a, b = _random_graph(rng, n)
    # node i is document (file i % 3, row i // 3) in gid terms; labels are grouped by file
    gid = (np.arange(n, dtype=np.uint64) % np.uint64(3)) << np.uint64(32) | (
        np.arange(n, dtype=np.uint64) // 3
    )
    work = str(tmp_path / "work")
    parts = 3
    q = rng.integers(0, parts, len(a))
    for p in range(parts):
        m = q == p
        lo, hi = np.minimum(gid[a[m]], gid[b[m]]), np.maximum(gid[a[m]], gid[b[m]])
        os.makedirs(os.path.join(work, "verified"), exist_ok=True)
        pq.write_table(
            pa.table({"a": lo, "b": hi, "kept": np.ones(int(m.sum()), bool)}),
            os.path.join(work, "verified", f"{unit(p)}.parquet"),
        )
    # one_task: the graph's edges are known and under the cap, one task labels it
    info = components(work, parts, np.array([0, 1, 2]), LocalExecutor(), len(a), len(a) if one_task else 0)
    labels = pa.concat_tables([pq.read_table(p) for p in glob.glob(os.path.join(work, "labels", "*", "*"))])
    root = dict(zip(labels.column("gid").to_pylist(), labels.column("root").to_pylist(), strict=True))
    count, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    touched = np.unique(np.concatenate([a, b]))
    assert set(root) == set(gid[touched].tolist())  # every node with an edge, once
    smallest = {}
    for i in touched.tolist():
        smallest[comp[i]] = min(smallest.get(comp[i], 2**64), int(gid[i]))
    assert all(root[int(gid[i])] == smallest[comp[i]] for i in touched.tolist())
    if one_task:
        assert info["cc_steps"] == 1 and not os.path.exists(os.path.join(work, "cc"))
    else:
        assert 2 < info["cc_steps"] < 60  # a path of 1000 nodes: log-many steps, not one per hop


def _cluster_docs(folder: str) -> None:
    """A clean article, a truncated copy whose id sorts first, a copy with a typo, and an unrelated document."""
    rng = np.random.default_rng(12)
    vocab = ["harbour", "vessel", "timber", "grain", "tide", "pilot", "quay", "crane", "ledger", "storm"]
    words = [f"{rng.choice(vocab)}{rng.integers(100, 1000)}" for _ in range(400)]
    clean = " ".join(words)
    truncated = clean[: int(len(clean) * 0.93)]  # cut by a broken download
    typo = " ".join(words[:200] + ["X" + words[200][1:]] + words[201:])  # one letter changed: same length
    os.makedirs(folder, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "id": ["a-truncated", "b-clean", "c-typo", "d-other"],
                "text": [
                    truncated,
                    clean,
                    typo,
                    "A short note about something else entirely, nothing shared.",
                ],
                "perplexity": [310.0, 250.0, 240.0, 100.0],
            }
        ),
        os.path.join(folder, "part.parquet"),
    )


def test_survivor_is_the_longest_text_not_the_smallest_id(tmp_path):
    folder = str(tmp_path / "in")
    _cluster_docs(folder)
    res = find_near_duplicates([folder], str(tmp_path / "w"), MinHashConfig(partitions=3, threshold=0.8))
    kept = dict(
        zip(res.duplicates.column("id").to_pylist(), res.duplicates.column("kept").to_pylist(), strict=True)
    )
    # the clean original and the typo copy have the same length: the smaller id breaks the tie
    assert kept == {"a-truncated": False, "b-clean": True, "c-typo": False}
    assert set(res.duplicates.column("cluster_id").to_pylist()) == {"b-clean"}
    # with a quality score (lower perplexity is better), the score decides before the length
    res = find_near_duplicates(
        [folder], str(tmp_path / "p"), MinHashConfig(score_column="perplexity", score_order="min")
    )
    kept = dict(
        zip(res.duplicates.column("id").to_pylist(), res.duplicates.column("kept").to_pylist(), strict=True)
    )
    assert kept == {"a-truncated": False, "b-clean": False, "c-typo": True}
    with pytest.raises(ValueError, match="score_order"):
        MinHashConfig(score_column="perplexity", score_order="lowest")


def _source(root: str, paragraphs: list[str], files: int = 4) -> None:
    """A written source: docs/<k>.parquet with near-duplicates across files."""
    rng = np.random.default_rng(9)
    os.makedirs(os.path.join(root, "docs"), exist_ok=True)
    base = [" ".join(paragraphs[i : i + 6]) for i in range(0, 6 * 30, 6)]
    for f in range(files):
        rows = []
        for k, text in enumerate(base):
            if (k + f) % 3 == 0:  # a copy of document k in file f, one word changed
                words = text.split()
                words[int(rng.integers(len(words)))] = "changed"
                rows.append({"id": f"f{f}-copy{k:02d}", "source": "cc", "text": " ".join(words)})
            rows.append(
                {"id": f"f{f}-own{k:02d}", "source": "cc", "text": f"file {f} document {k}. " + text[::-1]}
            )
        pq.write_table(table_from_rows(rows, CORE_SCHEMA), os.path.join(root, "docs", f"k{f}.parquet"))


def _paragraphs() -> list[str]:
    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(5000)]
    return [" ".join(rng.choice(vocab, 20)) for _ in range(400)]


def test_a_stage_killed_during_removal_resumes_removal_without_redoing_minhash(tmp_path, monkeypatch):
    import shutil

    from dedup import removal
    from dedup.stages import MinHashDedupStage

    paragraphs = _paragraphs()
    src, fresh = str(tmp_path / "cc"), str(tmp_path / "fresh")
    _source(src, paragraphs)
    shutil.copytree(src, fresh)
    stage = MinHashDedupStage(
        settings={"partitions": 4, "executor": "local"}
    )  # the kill is a patched function
    expected = run_stage(stage, fresh)
    assert expected["moved_to_rejected"] > 10

    real = removal.move_task
    monkeypatch.setattr(removal, "move_task", dying_after(real, 2, OSError("node lost during removal")))
    with pytest.raises(TaskFailed, match="node lost during removal"):
        run_stage(stage, src)
    monkeypatch.setattr(removal, "move_task", real)
    assert os.path.exists(os.path.join(src, "_dedup", "minhash.running.json"))
    markers = glob.glob(os.path.join(src, "_dedup", "minhash-[0-9a-f]*", "_done", "*", "*.json"))
    assert sum("/removal/" in m for m in markers) == 2
    before = {m: os.stat(m).st_mtime_ns for m in markers}
    done = run_stage(stage, src)
    # the same work folder (minhash-index/ is the incremental index): no pass ran again (markers untouched), only the two files left were moved
    assert len(glob.glob(os.path.join(src, "_dedup", "minhash-[0-9a-f]*"))) == 1
    assert all(os.stat(m).st_mtime_ns == t for m, t in before.items())
    assert done["moved_to_rejected"] == expected["moved_to_rejected"]
    for kind in ("docs", "rejected"):
        for f in sorted(glob.glob(os.path.join(fresh, kind, "*.parquet"))):
            mine = pq.read_table(os.path.join(src, kind, os.path.basename(f)))
            assert mine.column("id").to_pylist() == pq.read_table(f).column("id").to_pylist()
    assert not os.path.exists(os.path.join(src, "_dedup", "minhash.running.json"))
    assert run_stage(stage, src)["up_to_date"] is True
    dups = pq.read_table(os.path.join(src, "duplicates", "minhash.parquet"))
    assert (
        dups.select(KEY).to_pylist()
        == pq.read_table(os.path.join(fresh, "duplicates", "minhash.parquet")).select(KEY).to_pylist()
    )
    assert json.load(open(os.path.join(src, "_dedup", "minhash.json")))["fingerprint"]
