"""From candidate pairs to clusters: exact-Jaccard verification, connected components and survivors.

Only documents that appear in a candidate pair are ever loaded (their texts for verification, their id/score for the
survivor rule): memory follows the number of duplicates, not the corpus size.  Components come from vectorised
label propagation with pointer jumping over the edge list (a union-find that needs no Python loop per edge).
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.corpus import (
    InputFile,
    is_done,
    mark_done,
    read_marker,
    read_rows,
    split_gid,
    write_parquet_atomic,
)
from dedup.text import shingle_hashes

_U64 = np.uint64


def load_pairs(work: str) -> np.ndarray:
    files = sorted(glob.glob(os.path.join(work, "pairs", "*.parquet")))
    parts = [pq.read_table(p) for p in files]
    if not parts or not sum(t.num_rows for t in parts):
        return np.zeros((0, 2), _U64)
    t = pa.concat_tables(parts)
    pairs = np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1)
    return np.unique(pairs, axis=0)


def shingle_sets(
    files: list[InputFile], wanted: np.ndarray, text_column: str, ngram: int
) -> dict[int, np.ndarray]:
    """Sorted distinct shingles of each wanted document, read by row number from its file."""
    by_file: dict[int, list[int]] = defaultdict(list)
    fidx, rows = split_gid(wanted)
    for f, r in zip(fidx.tolist(), rows.tolist(), strict=True):
        by_file[f].append(r)
    out: dict[int, np.ndarray] = {}
    for f, rs in by_file.items():
        r = np.array(sorted(rs), dtype=np.int64)
        t = read_rows(files[f].path, r, [text_column])
        texts = ["" if x is None else x for x in t.column(text_column).to_pylist()]
        for lo in range(0, len(texts), 500):
            h, off = shingle_hashes(texts[lo : lo + 500], ngram)
            for i in range(len(off) - 1):
                g = (f << 32) | int(r[lo + i])
                out[g] = np.unique(h[off[i] : off[i + 1]])
    return out


def verify_pairs(
    work: str, files: list[InputFile], threshold: float, text_column: str, ngram: int, verify: bool
) -> dict[str, Any]:
    """Pass 3: keep the candidate pairs whose exact Jaccard reaches ``threshold`` (all of them if not verifying)."""
    if is_done(work, "verify", "all"):
        return read_marker(work, "verify", "all")
    pairs = load_pairs(work)
    jac = np.full(len(pairs), np.nan)
    if verify and len(pairs):
        sets = shingle_sets(files, np.unique(pairs), text_column, ngram)
        for i, (a, b) in enumerate(pairs.tolist()):
            sa, sb = sets[a], sets[b]
            inter = len(np.intersect1d(sa, sb, assume_unique=True))
            union = len(sa) + len(sb) - inter
            jac[i] = inter / union if union else 1.0
        keep = jac >= threshold
    else:
        keep = np.ones(len(pairs), dtype=bool)
    table = pa.table({"a": pairs[:, 0], "b": pairs[:, 1], "jaccard": jac, "kept": keep})
    write_parquet_atomic(table, os.path.join(work, "verified.parquet"))
    info = {
        "candidate_pairs": int(len(pairs)),
        "verified_pairs": int(keep.sum()),
        "rejected_pairs": int((~keep).sum()),
    }
    mark_done(work, "verify", "all", info)
    return info


def connected_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(nodes, label)``: each node's component is labelled by its smallest member's position in ``nodes``."""
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    u, v = inv[: len(a)], inv[len(a) :]
    label = np.arange(len(nodes))
    while True:
        lu, lv = label[u], label[v]
        m = np.minimum(lu, lv)
        new = label.copy()
        np.minimum.at(new, u, m)
        np.minimum.at(new, v, m)
        while True:  # pointer jumping: follow labels to their root
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return nodes, label
        label = new


def load_doctable(work: str, wanted: np.ndarray) -> pa.Table:
    tables = []
    want = pa.array(wanted)
    for p in sorted(glob.glob(os.path.join(work, "doctable", "*.parquet"))):
        t = pq.read_table(p)
        tables.append(t.filter(pc.is_in(t.column("gid"), value_set=want)))
    return pa.concat_tables(tables)


def build_clusters(work: str, reason: str) -> dict[str, Any]:
    """Pass 4: components of the verified pairs, survivor per cluster, ``duplicates/part-0.parquet``.

    Survivor: a protected (reference) document if any, then the highest score, then the smallest id; protected
    documents are never removed.
    """
    if is_done(work, "clusters", "all"):
        return read_marker(work, "clusters", "all")
    v = pq.read_table(os.path.join(work, "verified.parquet"))
    v = v.filter(v.column("kept"))
    a, b = v.column("a").to_numpy(), v.column("b").to_numpy()
    if len(a):
        nodes, label = connected_components(a, b)
    else:
        nodes, label = np.zeros(0, _U64), np.zeros(0, np.int64)
    docs = load_doctable(work, nodes)
    comp = dict(zip(nodes.tolist(), label.tolist(), strict=True))
    t = docs.append_column(
        "component", pa.array([comp[g] for g in docs.column("gid").to_pylist()], pa.int64())
    )
    t = t.append_column("neg_score", pc.fill_null(pc.negate(t.column("score")), 0.0))
    t = t.sort_by(
        [
            ("component", "ascending"),
            ("protected", "descending"),
            ("neg_score", "ascending"),
            ("id", "ascending"),
        ]
    )
    compv = t.column("component").to_numpy()
    first = np.r_[True, compv[1:] != compv[:-1]] if len(compv) else np.zeros(0, bool)
    ids = t.column("id").to_pylist()
    survivor_id = (
        np.array(ids, dtype=object)[np.flatnonzero(first)] if len(ids) else np.array([], dtype=object)
    )
    group = np.cumsum(first) - 1
    cluster_id = survivor_id[group] if len(ids) else survivor_id
    protected = t.column("protected").to_numpy(zero_copy_only=False)
    kept = first | protected
    sizes = np.bincount(group) if len(ids) else np.zeros(0, np.int64)
    out = pa.table(
        {
            "id": t.column("id"),
            "cluster_id": pa.array(cluster_id.tolist(), pa.string()),
            "kept": pa.array(kept),
            "cluster_size": pa.array(sizes[group] if len(ids) else [], pa.int64()),
            "gid": t.column("gid"),
            "protected": t.column("protected"),
            "score": t.column("score"),
            "reason": pa.array([None if k else reason for k in kept.tolist()], pa.string()),
        }
    )
    write_parquet_atomic(out, os.path.join(work, "duplicates.parquet"))
    hist = np.bincount(sizes) if len(sizes) else np.zeros(1, np.int64)
    info = {
        "clusters": int(len(sizes)),
        "docs_in_clusters": int(len(ids)),
        "removed": int((~kept).sum()),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "cluster_sizes": {str(s): int(c) for s, c in enumerate(hist) if c and s},
    }
    mark_done(work, "clusters", "all", info)
    return info
