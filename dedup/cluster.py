"""From candidate pairs to verified pairs: exact Jaccard of shingle sets, as three passes of partitioned tasks.

No process holds all pairs, all candidate documents or all texts; the driver only lists the units.

* plan (one task per pair partition q, R tasks): the partition's candidate pairs, once each, to
  ``verify/pairs/<q>.parquet``; the documents they need, by the file group that holds them, to
  ``verify/need/<g>/<q>.parquet``.
* gather (one task per file group g, M tasks): the texts of the group's needed documents, read by row number, to
  ``verify/texts/<q>/<g>.parquet``: one read of each input file, whatever the number of partitions.  A document
  needed by several partitions is copied into each (disk, not memory).
* verify (one task per pair partition q): shingle sets of the partition's documents, exact Jaccard of its pairs,
  ``verified/<q>.parquet`` with ``(a, b, jaccard, kept)``.

Without verification the plan task writes ``verified/<q>.parquet`` directly with every pair kept.  Every unit
leaves a marker, so a killed run resumes where it stopped.  A verify task holds the texts of its partition's
documents: about (candidate documents x 2 / R), so R is the knob that bounds worker memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dedup.corpus import (
    PAIR_SCHEMA,
    Folder,
    InputFile,
    PartitionWriter,
    exists,
    is_done,
    mark_done,
    parquet_file,
    read_folder,
    read_marker,
    read_rows,
    read_table,
    remove_tree,
    split_gid,
    unit,
    write_parquet_atomic,
)
from dedup.text import shingle_hashes, spans
from pipelines.core.executor import Executor

_U64 = np.uint64
NEED_SCHEMA = pa.schema([("gid", pa.uint64())])


def _verified_table(a: np.ndarray, b: np.ndarray, jac: np.ndarray, kept: np.ndarray) -> pa.Table:
    return pa.table(
        {"a": pa.array(a, pa.uint64()), "b": pa.array(b, pa.uint64()), "jaccard": jac, "kept": kept}
    )


def plan_task(args: tuple[int, str, np.ndarray, int, bool]) -> dict[str, Any]:
    """One pair partition: its distinct pairs, and the documents they need by file group (or all kept)."""
    q, work, group_of_file, groups, verify = args
    name = unit(q)
    if is_done(work, "verify_plan", name):
        return read_marker(work, "verify_plan", name)
    t = read_folder(os.path.join(work, "pairs", name))
    if t is None or not t.num_rows:
        ab = np.zeros((0, 2), _U64)
    else:
        ab = np.unique(np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1), axis=0)
    del t
    a, b = ab[:, 0].copy(), ab[:, 1].copy()
    if not verify:
        n = len(a)
        write_parquet_atomic(
            _verified_table(a, b, np.full(n, np.nan), np.ones(n, bool)),
            os.path.join(work, "verified", f"{name}.parquet"),
        )
    else:
        write_parquet_atomic(
            pa.table({"a": a, "b": b}, schema=PAIR_SCHEMA),
            os.path.join(work, "verify", "pairs", f"{name}.parquet"),
        )
        need = np.unique(np.concatenate([a, b]))
        out = PartitionWriter(os.path.join(work, "verify", "need"), name, groups, NEED_SCHEMA)
        out.add_split(pa.table({"gid": need}, schema=NEED_SCHEMA), group_of_file[split_gid(need)[0]])
        out.close()
    info = {"partition": q, "candidate_pairs": int(len(a))}
    mark_done(work, "verify_plan", name, info)
    return info


def gather_task(args: tuple[int, list[InputFile], str, str, int]) -> dict[str, Any]:
    """One file group: the texts its files hold for every verify partition, ``verify/texts/<q>/<g>.parquet``."""
    g, files, work, text_column, partitions = args
    name = unit(g)
    if is_done(work, "verify_gather", name):
        return read_marker(work, "verify_gather", name)
    path_of = {f.index: f.path for f in files}
    gid_l, q_l = [], []
    for q in range(partitions):
        p = os.path.join(work, "verify", "need", name, f"{unit(q)}.parquet")
        if exists(p):
            x = read_table(p).column("gid").to_numpy()
            gid_l.append(x)
            q_l.append(np.full(len(x), q, np.int64))
    gid = np.concatenate(gid_l) if gid_l else np.zeros(0, _U64)
    part = np.concatenate(q_l) if q_l else np.zeros(0, np.int64)
    ugid, inv = np.unique(gid, return_inverse=True)
    schema = pa.schema([("gid", pa.uint64()), ("text", pa.large_string())])
    out = PartitionWriter(os.path.join(work, "verify", "texts"), name, partitions, schema, flush_rows=20_000)
    for lo, hi, text in _texts(work, name, path_of, ugid, text_column):
        sel = np.flatnonzero((inv >= lo) & (inv < hi))
        t = pa.table({"gid": gid[sel], "text": text.cast(pa.large_string()).take(pa.array(inv[sel] - lo))})
        out.add_split(t, part[sel])
    out.close()
    info = {"group": g, "docs": int(len(ugid)), "copies": int(len(gid))}
    mark_done(work, "verify_gather", name, info)
    return info


def _texts(
    work: str, name: str, path_of: dict[int, str], ugid: np.ndarray, text_column: str
) -> Iterator[tuple[int, int, pa.ChunkedArray]]:
    """``(lo, hi, texts of ugid[lo:hi])``, one read per file; documents of an earlier run's index (an incremental
    run) come from ``located/<g>.parquet`` (gid, text), where its locate pass put them, empty when gone."""
    located = os.path.join(work, "located", f"{name}.parquet")
    if exists(located):
        t = read_table(located)
        at = np.searchsorted(t.column("gid").to_numpy(), ugid)
        yield 0, len(ugid), t.column("text").take(pa.array(at))
        return
    fidx, rows = split_gid(ugid)
    bounds = np.flatnonzero(np.r_[True, fidx[1:] != fidx[:-1], True]) if len(ugid) else np.zeros(1, np.int64)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        yield lo, hi, read_rows(path_of[int(fidx[lo])], rows[lo:hi], [text_column]).column(text_column)


def verify_task(args: tuple[int, str, float, int, str]) -> dict[str, Any]:
    """Exact Jaccard of one verify partition's pairs to ``verified/<q>.parquet``; resumable."""
    q, work, threshold, ngram, tokenize = args
    name = unit(q)
    if is_done(work, "verify_part", name):
        return read_marker(work, "verify_part", name)
    pairs = read_table(os.path.join(work, "verify", "pairs", f"{name}.parquet"))
    folder = os.path.join(work, "verify", "texts", name)
    paths = [o.path for o in Folder(folder).list(suffix=".parquet", recursive=False)]
    gid, off, vals = doc_shingles(paths, ngram, tokenize)
    a, b = pairs.column("a").to_numpy(), pairs.column("b").to_numpy()
    jac = pair_jaccard(_doc_of(gid, a, folder), _doc_of(gid, b, folder), off, vals)
    keep = jac >= threshold
    write_parquet_atomic(_verified_table(a, b, jac, keep), os.path.join(work, "verified", f"{name}.parquet"))
    info = {
        "partition": q,
        "docs": len(np.unique(gid)),
        "candidate_pairs": int(len(a)),
        "verified_pairs": int(keep.sum()),
        "rejected_pairs": int((~keep).sum()),
    }
    mark_done(work, "verify_part", name, info)
    return info


def _doc_of(gid: np.ndarray, wanted: np.ndarray, folder: str) -> np.ndarray:
    """The row of each wanted gid in ``gid``; a gid the gather pass did not deliver is an error, not a guess."""
    by_gid = np.argsort(gid, kind="stable")
    at = np.minimum(np.searchsorted(gid[by_gid], wanted), max(len(gid) - 1, 0))
    if len(wanted) and (not len(gid) or not np.array_equal(gid[by_gid][at], wanted)):
        raise RuntimeError(f"verify texts in {folder} lack documents of their pairs: rerun the gather pass")
    return by_gid[at]


def doc_shingles(paths: list[str], ngram: int, tokenize: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shingles of every document of ``(gid, text)`` files, whole batches at once: ``(gid[D], offsets[D+1],
    hashes)``, document d's at ``offsets[d]:offsets[d+1]`` (repeats included: :func:`pair_jaccard` makes sets)."""
    gid_l, h_l, len_l = [], [], []
    for path in paths:
        for rb in parquet_file(path).iter_batches(batch_size=2000):
            h, off = shingle_hashes(rb.column(1), ngram, tokenize=tokenize)
            gid_l.append(rb.column(0).to_numpy())
            h_l.append(h)
            len_l.append(np.diff(off))
    if not gid_l:
        return np.zeros(0, _U64), np.zeros(1, np.int64), np.zeros(0, _U64)
    off = np.zeros(sum(len(g) for g in gid_l) + 1, np.int64)
    np.cumsum(np.concatenate(len_l), out=off[1:])
    return np.concatenate(gid_l), off, np.concatenate(h_l)


def pair_jaccard(
    doc_a: np.ndarray, doc_b: np.ndarray, off: np.ndarray, vals: np.ndarray, max_items: int = 4_000_000
) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair ``(doc_a[i], doc_b[i])`` (``vals[off[d]:off[d+1]]``, repeats
    allowed), 1.0 for two empty sets.  Both documents' shingles of each pair side by side, one stable sort by
    (pair, hash) (a's before b's on ties), then distinct (pair, hash, side) counted: each set's size and the
    hashes found on both sides.  Pairs go in chunks of about ``max_items`` values: bounded memory."""
    len_a, len_b = off[doc_a + 1] - off[doc_a], off[doc_b + 1] - off[doc_b]
    size_a, size_b, inter = (np.zeros(len(doc_a), np.int64) for _ in range(3))
    cum = np.cumsum(len_a + len_b)
    lo = 0
    while lo < len(doc_a):
        hi = max(lo + 1, int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + max_items, "right")))
        la, lb, k = len_a[lo:hi], len_b[lo:hi], hi - lo
        tag = np.r_[np.repeat(np.arange(k), la), np.repeat(np.arange(k), lb)]
        side = np.r_[np.zeros(int(la.sum()), bool), np.ones(int(lb.sum()), bool)]
        v = np.r_[vals[spans(off[doc_a[lo:hi]], la)], vals[spans(off[doc_b[lo:hi]], lb)]]
        order = np.lexsort((v, tag))
        tag, side, v = tag[order], side[order], v[order]
        same = (tag[1:] == tag[:-1]) & (v[1:] == v[:-1])
        first = np.r_[True, ~same | (side[1:] != side[:-1])]  # first of each distinct (pair, hash, side)
        tag, side, v = tag[first], side[first], v[first]
        size_a[lo:hi] = np.bincount(tag[~side], minlength=k)
        size_b[lo:hi] = np.bincount(tag[side], minlength=k)
        both = (tag[1:] == tag[:-1]) & (v[1:] == v[:-1])  # (pair, hash, a) then (pair, hash, b)
        inter[lo:hi] = np.bincount(tag[1:][both], minlength=k)
        lo = hi
    union = size_a + size_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def verify_pairs(
    work: str,
    groups: list[list[InputFile]],
    group_of_file: np.ndarray,
    partitions: int,
    threshold: float,
    text_column: str,
    ngram: int,
    verify: bool,
    executor: Executor,
    tokenize: str = "words",
) -> dict[str, Any]:
    """Pass 3: keep the candidate pairs whose exact Jaccard reaches ``threshold`` (all of them if not verifying)."""
    if is_done(work, "verify", "all"):
        return read_marker(work, "verify", "all")
    plans = executor.map(
        plan_task,
        [(q, work, group_of_file, len(groups), verify) for q in range(partitions)],
        "dedup: plan verification",
    )
    info = {"candidate_pairs": sum(p["candidate_pairs"] for p in plans), "verify_partitions": partitions}
    if verify:
        executor.map(
            gather_task,
            [(g, files, work, text_column, partitions) for g, files in enumerate(groups)],
            "dedup: gather texts",
        )
        parts = executor.map(
            verify_task,
            [(q, work, threshold, ngram, tokenize) for q in range(partitions)],
            "dedup: verify pairs",
        )
        info["verified_pairs"] = sum(p["verified_pairs"] for p in parts)
        info["rejected_pairs"] = sum(p["rejected_pairs"] for p in parts)
    else:
        info["verified_pairs"], info["rejected_pairs"] = info["candidate_pairs"], 0
    mark_done(work, "verify", "all", info)
    # the copies of input texts are no longer needed (a rerun finds verify/all done)
    remove_tree(os.path.join(work, "verify", "texts"))
    return info
