"""The mixture build over candidate partitions: the partition count never changes the output, the partial epoch
walked partition by partition is the one-pass sampler's, and the top_fraction cut from histogram rounds is exact."""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixtures import select as select_module
from mixtures.build import build_stage
from mixtures.partitions import CANDIDATES, PartitionTask, dedup_partition, rank_keys, write_candidates
from mixtures.sample import Walk, overshoot, partial_epoch, walk_partial
from mixtures.select import find_cuts
from mixtures.spec import load_mixture
from pipelines.core.executor import LocalExecutor
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture
from tests.helpers.paths import FIXTURES

TINY = os.path.join(FIXTURES, "mixtures", "tiny_bench.jsonl")


def _reference_partial_epoch(tokens: np.ndarray, remainder: float) -> np.ndarray:
    """The one-pass sampler as it was before the walk could be cut (the whole list in one process)."""
    if remainder <= 0:
        return np.zeros(0, np.int64)
    cum = np.cumsum(tokens)
    k = int(np.searchsorted(cum, remainder, side="right"))
    taken, total, skipped = list(range(k)), int(cum[k - 1]) if k else 0, []
    for i in range(k, len(tokens)):
        if remainder - total <= remainder * 1e-3:
            break
        if total + int(tokens[i]) <= remainder:
            taken.append(i)
            total += int(tokens[i])
        else:
            skipped.append(i)
    if skipped:
        best = min(skipped, key=lambda i: (abs(total + int(tokens[i]) - remainder), i))
        if abs(total + int(tokens[best]) - remainder) < remainder - total:
            taken.append(best)
    return np.array(sorted(taken), dtype=np.int64)


def test_a_partial_epoch_walked_partition_by_partition_takes_what_one_pass_takes():
    rng = np.random.default_rng(5)
    for _ in range(600):
        n = int(rng.integers(1, 80))
        tokens = rng.integers(0, int(rng.choice([20, 2000, 200_000])), n)
        remainder = float(rng.uniform(1, tokens.sum() + 10))
        want = _reference_partial_epoch(tokens, remainder)
        assert np.array_equal(partial_epoch(tokens, remainder), want)
        bounds = [0, *sorted(rng.integers(0, n + 1, 4).tolist()), n]
        walk, taken = Walk(), []
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            got, walk = walk_partial(tokens[start:end], remainder, walk, start)
            taken += (got + start).tolist()
        best = overshoot(walk, remainder)
        assert sorted(taken + ([best] if best is not None else [])) == want.tolist()


def test_rank_keys_order_best_first_with_nulls_last():
    rank = np.array([0.5, np.nan, 2.0, -0.0, 0.0, -3.0, np.inf, 2.0])
    keys = rank_keys(rank)
    assert keys[3] == keys[4] and keys[2] == keys[7]
    assert np.argsort(keys, kind="stable").tolist() == [6, 2, 7, 0, 3, 4, 5, 1]


@pytest.mark.parametrize("raw_limit", [0, 1 << 16])
def test_the_cut_from_histogram_rounds_is_the_exact_order_statistic(tmp_path, monkeypatch, raw_limit):
    """8-bit rounds down to the last bit (raw_limit 0) or until the bucket is small: the same exact cut."""
    monkeypatch.setattr(select_module, "RAW_KEYS", raw_limit)
    rng = np.random.default_rng(1)
    work, n, parts = str(tmp_path), 3000, 5
    rank = rng.normal(size=n).round(2)  # many equal values
    rank[rng.random(n) < 0.05] = np.nan
    ids = [f"d{i}" for i in range(n)]
    table = pa.table(
        {
            "entry": np.zeros(n, np.int16),
            "rank_hash": rng.integers(0, 2**63, n, dtype=np.uint64),
            "id_hash": rng.integers(0, 2**63, n, dtype=np.uint64),
            "file_no": np.zeros(n, np.int32),
            "row": np.arange(n),
            "n_tokens": np.full(n, 10),
            "rank": rank,
            "contaminated": np.zeros(n, bool),
            "topic": np.full(n, -1, np.int16),
        },
        schema=CANDIDATES,
    )
    write_candidates(work, parts, 0, table)
    counts = [dedup_partition(PartitionTask(work, p)) for p in range(parts)]
    assert sum(c.get(0, 0) for c in counts) == n and len(ids) == n
    holders = [p for p in range(parts) if counts[p]]
    keys = np.sort(rank_keys(rank))
    for want in (1, 17, 1500, 2990, n):
        (cut,) = find_cuts(LocalExecutor(), work, {0: want}, {0: holders}, "t").values()
        key = keys[want - 1]
        assert cut == (int(key), int((keys < key).sum()), int((keys == key).sum()))


def _tree(root: str) -> str:
    """Duplicate ids across files, a planted benchmark quote, NULL and tied scores at a cut, two entries on one
    source, a source sampled over several epochs."""
    item = json.loads(open(TINY, encoding="utf-8").readline())
    cc = docs_table("commoncrawl", 300, seed=4)
    texts = cc.column("text").to_pylist()
    texts[7] = "Homework help. " + item["question"] + " Answer: " + item["answer"]
    cc = cc.set_column(3, "text", pa.array(texts, pa.large_string()))
    write_docs(root, "commoncrawl", cc.slice(0, 180), "cc-0")
    write_docs(root, "commoncrawl", cc.slice(120), "cc-1")  # 60 ids in both files
    write_docs(root, "books", docs_table("books", 8, max_sentences=150), "books")
    scores = [None if i % 7 == 0 else float(i % 4) for i in range(200)]
    write_docs(root, "github", docs_table("github", 200, seed=3, extra={"q": scores}), "gh")
    return root


def _build(root: str, out: str, partitions: int, executor: str) -> tuple[dict, dict, list]:
    sources = {
        "commoncrawl": {"share": 0.5, "max_epochs": 2.0},
        "cc_long": {"from": "commoncrawl", "share": 0.1, "where": "n_tokens > 150"},
        "books": {"share": 0.2, "max_epochs": 4.0},
        "github": {"share": 0.2, "rank_by": "q", "top_fraction": 0.3, "max_epochs": 2.0},
    }
    decontaminate = {"n": 8, "benchmarks": [{"name": "tiny", "path": TINY, "fields": ["question", "answer"]}]}
    mix = write_mixture(
        os.path.join(out + ".yaml"),
        sources,
        stage="parts",
        total_tokens=60000,
        on_shortfall="scale",
        shard_max_tokens=6000,
        decontaminate=decontaminate,
        partitions=partitions,
    )
    import shutil

    shutil.copytree(root, out)
    m = build_stage(load_mixture(path=mix), out, executor=executor, workers=2)
    stage = os.path.join(out, "mixtures", "parts")
    files = {
        os.path.relpath(p, stage): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(os.path.join(stage, "*", "*.parquet"))
    }
    left = [
        p for p in glob.glob(os.path.join(stage, "**"), recursive=True) if "_select" in p or "_shuffle" in p
    ]
    manifest = {k: v for k, v in m.items() if k not in ("execution", "inputs", "mixture_file")}
    return manifest, files, left


def test_the_candidate_partition_count_does_not_change_the_mixture(tmp_path):
    root = _tree(str(tmp_path / "curated"))
    one, one_files, one_left = _build(root, str(tmp_path / "one"), 1, "local")
    seven, seven_files, seven_left = _build(root, str(tmp_path / "seven"), 7, "process")
    assert one == seven and one_files == seven_files and not one_left and not seven_left
    by = {s["name"]: s for s in one["sources"]}
    # what the build did: duplicates counted once, the planted quote removed, the cut through tied scores,
    # books repeated, the realised shares at their targets within one document
    assert (
        by["commoncrawl"]["candidate_documents"] == 300 and by["commoncrawl"]["contaminated_documents"] == 1
    )
    assert by["github"]["candidate_documents"] == 60 and by["books"]["epochs"] > 1
    rows = pq.read_table(os.path.join(tmp_path / "one", "mixtures", "parts", "shards")).to_pylist()
    assert "commoncrawl/4/00007" not in {r["id"] for r in rows} and len(rows) == one["documents"]
    assert len({(r["mix_source"], r["id"], r["epoch"]) for r in rows}) == len(rows)
    for s in one["sources"]:
        assert abs(s["realised_share"] - s["effective_target_share"]) < 0.02, s
