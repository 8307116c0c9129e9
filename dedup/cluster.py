"""From candidate pairs to clusters: exact-Jaccard verification, connected components and survivors.

Memory is bounded by settings, not by the corpus nor by its number of duplicates; no process holds the texts or
shingle sets of all candidate documents at once:

* plan (this process, numpy over pair ids only): candidate pairs are grouped into *verify partitions* of at most
  ``verify_chars`` characters of text.  All pairs of one connected component of the candidate graph go to the same
  partition, so a document is needed in one partition only; a component over the budget has its pairs cut into
  chunks (documents in several chunks are copied into each).  ``verify/pairs/<q>`` and ``verify/need/<file>``.
* gather (per input file, parallel): the texts of the file's candidate documents, read by row number, go to
  ``verify/texts/<q>/<file>.parquet``: one read of each input file, however many partitions.
* verify (per partition, parallel): shingle sets of the partition's documents, exact Jaccard of its pairs,
  ``verified/<q>.parquet``.
* clusters: connected components of the verified pairs (arrays of node ids, 16 bytes per pair; vectorised label
  propagation with pointer jumping, no Python loop per edge), the facts of each node read by row number from its
  file's doc table, one survivor per cluster.

Every unit (the plan, each file, each partition) leaves a marker, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.corpus import (
    DOC_TABLE_SCHEMA,
    InputFile,
    is_done,
    mark_done,
    pmap,
    read_marker,
    read_rows,
    split_gid,
    write_parquet_atomic,
)
from dedup.text import shingle_hashes

_U64 = np.uint64
#: default ``verify_chars`` (MinHashConfig.verify_chars): ~11k web documents per verify partition
VERIFY_CHARS = 32_000_000


def load_pairs(work: str) -> np.ndarray:
    """Every candidate pair ``(a, b)``, ``a < b``, once, sorted (16 bytes per pair)."""
    files = sorted(glob.glob(os.path.join(work, "pairs", "*.parquet")))
    parts = [pq.read_table(p) for p in files]
    if not parts or not sum(t.num_rows for t in parts):
        return np.zeros((0, 2), _U64)
    a = np.concatenate([t.column("a").to_numpy() for t in parts]).astype(_U64)
    b = np.concatenate([t.column("b").to_numpy() for t in parts]).astype(_U64)
    del parts
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]  # a pair found in several bands: once
    return np.stack([a[first], b[first]], axis=1)


def _by_file(g: np.ndarray) -> Iterator[tuple[int, slice, np.ndarray]]:
    """``(file index, slice of g, rows)`` of sorted gids ``g``, one file at a time, in the order of ``g``."""
    if not len(g):
        return
    fidx, rows = split_gid(g)
    bounds = np.flatnonzero(np.r_[True, fidx[1:] != fidx[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        yield int(fidx[lo]), slice(lo, hi), rows[lo:hi]


def doc_facts(work: str, files: list[InputFile], g: np.ndarray, columns: list[str]) -> pa.Table:
    """Doc-table rows of the sorted gids ``g``, in their order: each file's table is read alone, rows taken by number."""
    parts = []
    for fi, _, rows in _by_file(g):
        t = pq.read_table(os.path.join(work, "doctable", f"{files[fi].key}.parquet"), columns=columns)
        parts.append(t.take(pa.array(rows)))
    return pa.concat_tables(parts) if parts else DOC_TABLE_SCHEMA.empty_table().select(columns)


def _unit(q: int) -> str:
    return f"{q:05d}"


def plan_verify(work: str, files: list[InputFile], pairs: np.ndarray, verify_chars: int) -> dict[str, Any]:
    """Assign every candidate pair to a verify partition (see the module docstring); resumable as one unit."""
    if is_done(work, "verify_plan", "all"):
        return read_marker(work, "verify_plan", "all")
    a, b = pairs[:, 0], pairs[:, 1]
    nodes, label = connected_components(a, b)
    chars = np.maximum(doc_facts(work, files, nodes, ["chars"]).column("chars").to_numpy(), 1)
    _, comp = np.unique(label, return_inverse=True)  # components numbered by their smallest member
    comp_chars = np.bincount(comp, weights=chars).astype(np.int64)
    budget = max(1, int(verify_chars))
    # whole components packed in order into partitions of at most `budget` characters
    part_of_comp = np.full(len(comp_chars), -1, np.int64)
    nq, acc = 0, 0
    for i, c in enumerate(comp_chars.tolist()):
        if c > budget:
            continue
        if acc and acc + c > budget:
            nq, acc = nq + 1, 0
        part_of_comp[i] = nq
        acc += c
    nq += 1 if acc else 0
    ia, ib = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    pair_comp = comp[ia]
    pair_part = part_of_comp[pair_comp]
    # a component over the budget: its pairs (in (a, b) order) cut into chunks of at most `budget` characters
    big = np.flatnonzero(pair_part < 0)
    big = big[np.argsort(pair_comp[big], kind="stable")]
    cur, cur_comp, seen, acc = -1, -1, set(), 0
    for i, x, y, cx, cy, c in zip(
        big.tolist(),
        a[big].tolist(),
        b[big].tolist(),
        chars[ia[big]].tolist(),
        chars[ib[big]].tolist(),
        pair_comp[big].tolist(),
        strict=True,
    ):
        add = (0 if x in seen else cx) + (0 if y in seen else cy)
        if c != cur_comp or acc + add > budget:
            cur, cur_comp, seen, acc, nq = nq, c, set(), 0, nq + 1
            add = cx + cy
        seen.update((x, y))
        acc += add
        pair_part[i] = cur
    # documents each partition needs: a whole component's nodes, or the ends of a big component's chunk pairs
    small = part_of_comp[comp] >= 0
    need_g = np.concatenate([nodes[small], a[big], b[big]])
    need_q = np.concatenate([part_of_comp[comp][small], pair_part[big], pair_part[big]])
    need = np.unique(np.stack([need_g, need_q.astype(_U64)], axis=1), axis=0)
    for fi, sl, rows in _by_file(need[:, 0]):
        write_parquet_atomic(
            pa.table({"row": rows, "part": need[sl, 1].astype(np.int32)}),
            os.path.join(work, "verify", "need", f"{files[fi].key}.parquet"),
        )
    order = np.argsort(pair_part, kind="stable")  # pairs stay in (a, b) order inside a partition
    bounds = np.searchsorted(pair_part[order], np.arange(nq + 1))
    part_chars = np.zeros(nq, np.int64)
    np.add.at(part_chars, need[:, 1].astype(np.int64), chars[np.searchsorted(nodes, need[:, 0])])
    for q in range(nq):
        sel = order[bounds[q] : bounds[q + 1]]
        write_parquet_atomic(
            pa.table({"a": a[sel], "b": b[sel]}), os.path.join(work, "verify", "pairs", f"{_unit(q)}.parquet")
        )
    info = {
        "partitions": int(nq),
        "candidate_docs": int(len(nodes)),
        "candidate_chars": int(chars.sum()),
        "largest_partition_chars": int(part_chars.max()) if nq else 0,
        "copied_docs": int(len(need) - len(nodes)),
    }
    mark_done(work, "verify_plan", "all", info)
    return info


def gather_task(args: tuple[InputFile, str, str]) -> dict[str, Any]:
    """Texts of one input file's candidate documents to ``verify/texts/<q>/<file>.parquet``; resumable."""
    f, work, text_column = args
    if is_done(work, "verify_gather", f.key):
        return {"file": f.key, "skipped": True}
    need = pq.read_table(os.path.join(work, "verify", "need", f"{f.key}.parquet"))
    rows, part = need.column("row").to_numpy(), need.column("part").to_numpy()
    urows, inv = np.unique(rows, return_inverse=True)
    text = read_rows(f.path, urows, [text_column]).column(text_column)
    g = (_U64(f.index) << _U64(32)) | urows.astype(_U64)
    for q in np.unique(part).tolist():
        take = inv[part == q]
        write_parquet_atomic(
            pa.table({"gid": g[take], "text": text.take(pa.array(take))}),
            os.path.join(work, "verify", "texts", _unit(q), f"{f.key}.parquet"),
        )
    info = {"file": f.key, "docs": int(len(urows))}
    mark_done(work, "verify_gather", f.key, info)
    return info


def verify_task(args: tuple[int, str, float, int]) -> dict[str, Any]:
    """Exact Jaccard of one verify partition's pairs to ``verified/<q>.parquet``; resumable."""
    q, work, threshold, ngram = args
    if is_done(work, "verify_part", _unit(q)):
        return read_marker(work, "verify_part", _unit(q))
    pairs = pq.read_table(os.path.join(work, "verify", "pairs", f"{_unit(q)}.parquet"))
    sets: dict[int, np.ndarray] = {}
    for path in sorted(glob.glob(os.path.join(work, "verify", "texts", _unit(q), "*.parquet"))):
        pf = pq.ParquetFile(path)
        for rb in pf.iter_batches(batch_size=500):
            texts = ["" if x is None else x for x in rb.column(1).to_pylist()]
            h, off = shingle_hashes(texts, ngram)
            for g, lo, hi in zip(rb.column(0).to_pylist(), off[:-1].tolist(), off[1:].tolist(), strict=True):
                sets[g] = np.unique(h[lo:hi])
    a, b = pairs.column("a").to_numpy(), pairs.column("b").to_numpy()
    jac = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        sa, sb = sets[x], sets[y]
        inter = len(np.intersect1d(sa, sb, assume_unique=True))
        union = len(sa) + len(sb) - inter
        jac[i] = inter / union if union else 1.0
    keep = jac >= threshold
    write_parquet_atomic(
        pa.table({"a": a, "b": b, "jaccard": jac, "kept": keep}),
        os.path.join(work, "verified", f"{_unit(q)}.parquet"),
    )
    info = {
        "partition": q,
        "docs": len(sets),
        "candidate_pairs": int(len(a)),
        "verified_pairs": int(keep.sum()),
        "rejected_pairs": int((~keep).sum()),
    }
    mark_done(work, "verify_part", _unit(q), info)
    return info


def verify_pairs(
    work: str,
    files: list[InputFile],
    threshold: float,
    text_column: str,
    ngram: int,
    verify: bool,
    verify_chars: int = VERIFY_CHARS,
    workers: int = 1,
    executor: str = "local",
) -> dict[str, Any]:
    """Pass 3: keep the candidate pairs whose exact Jaccard reaches ``threshold`` (all of them if not verifying).

    Plan, gather and verify as in the module docstring; ``verified/<q>.parquet`` holds ``(a, b, jaccard, kept)``.
    """
    if is_done(work, "verify", "all"):
        return read_marker(work, "verify", "all")
    pairs = load_pairs(work)
    if verify and len(pairs):
        plan = plan_verify(work, files, pairs, verify_chars)
        del pairs
        todo = [f for f in files if os.path.exists(os.path.join(work, "verify", "need", f"{f.key}.parquet"))]
        pmap(gather_task, [(f, work, text_column) for f in todo], workers, executor)
        parts = pmap(
            verify_task, [(q, work, threshold, ngram) for q in range(plan["partitions"])], workers, executor
        )
        info = {k: sum(p[k] for p in parts) for k in ("candidate_pairs", "verified_pairs", "rejected_pairs")}
        info["verify_partitions"] = plan["partitions"]
    else:
        write_parquet_atomic(
            pa.table(
                {
                    "a": pairs[:, 0],
                    "b": pairs[:, 1],
                    "jaccard": np.full(len(pairs), np.nan),
                    "kept": np.ones(len(pairs), dtype=bool),
                }
            ),
            os.path.join(work, "verified", f"{_unit(0)}.parquet"),
        )
        info = {"candidate_pairs": int(len(pairs)), "verified_pairs": int(len(pairs)), "rejected_pairs": 0}
    mark_done(work, "verify", "all", info)
    # the copies of input texts are no longer needed (a rerun finds verify/all done)
    shutil.rmtree(os.path.join(work, "verify", "texts"), ignore_errors=True)
    return info


def load_verified(work: str) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of every verified (kept) pair."""
    a_l, b_l = [np.zeros(0, _U64)], [np.zeros(0, _U64)]
    for p in sorted(glob.glob(os.path.join(work, "verified", "*.parquet"))):
        t = pq.read_table(p, columns=["a", "b", "kept"])
        t = t.filter(t.column("kept"))
        a_l.append(t.column("a").to_numpy())
        b_l.append(t.column("b").to_numpy())
    return np.concatenate(a_l).astype(_U64), np.concatenate(b_l).astype(_U64)


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


def build_clusters(work: str, files: list[InputFile], reason: str) -> dict[str, Any]:
    """Pass 4: components of the verified pairs, survivor per cluster, ``duplicates/part-0.parquet``.

    Survivor: a protected (reference) document if any, then the highest score, then the smallest id; protected
    documents are never removed.
    """
    if is_done(work, "clusters", "all"):
        return read_marker(work, "clusters", "all")
    a, b = load_verified(work)
    if len(a):
        nodes, label = connected_components(a, b)
    else:
        nodes, label = np.zeros(0, _U64), np.zeros(0, np.int64)
    del a, b
    docs = doc_facts(work, files, nodes, ["gid", "id", "score", "protected"])  # in the order of `nodes`
    t = docs.append_column("component", pa.array(label, pa.int64()))
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
