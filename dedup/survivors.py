"""Which member of each duplicate cluster survives: a partitioned group-by, no process holding every cluster.

* members (one task per file group g): the group's labelled documents ``labels/<g>/*`` joined with its doc table
  (id, score, protected, text length) and written by the partition of their cluster's root:
  ``members/<q>/<g>.parquet``.
* choose (one task per root partition q): sort the partition's members by cluster and rank, first one survives;
  ``duplicates/<q>.parquet`` (every member, public columns and gid) and ``removed/<g>/<q>.parquet`` (the rows to
  remove, by the file group that holds them, for the removal tasks).

The rule, deterministic and independent of partitions and task counts: a reference (protected) document first, then
the best quality score when one is configured (``score_order`` max or min; documents without a score rank last),
then the longest text, then the smallest id.  So a truncated or corrupted copy does not survive over the clean
original just because its id sorts first.  Protected documents are never removed.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup import corpus
from pipelines.core.executor import Executor

#: a cluster member: its root, then the document's row of the doc table
MEMBER_SCHEMA = pa.schema([pa.field("root", pa.uint64()), *corpus.DOC_TABLE_SCHEMA])
REMOVED_SCHEMA = pa.schema([("gid", pa.uint64()), ("cluster_id", pa.string()), ("reason", pa.string())])


def members_task(args: tuple[int, str, int]) -> dict[str, Any]:
    """One file group: facts of its documents that belong to a cluster, by the partition of the cluster's root."""
    g, work, partitions = args
    if corpus.is_done(work, "members", corpus.unit(g)):
        return corpus.read_marker(work, "members", corpus.unit(g))
    labels = corpus.read_folder(os.path.join(work, "labels", corpus.unit(g)))
    out = corpus.PartitionWriter(os.path.join(work, "members"), corpus.unit(g), partitions, MEMBER_SCHEMA)
    n = 0
    if labels is not None and labels.num_rows:
        labels = labels.sort_by("gid")
        facts = corpus.read_table(os.path.join(work, "doctable", f"{corpus.unit(g)}.parquet"))
        fg = facts.column("gid").to_numpy()  # sorted: files in order, rows in order
        gid = labels.column("gid").to_numpy()
        at = np.searchsorted(fg, gid)
        if not np.array_equal(fg[np.minimum(at, len(fg) - 1)], gid):
            raise RuntimeError(
                f"{work}: labelled documents missing from doctable/{corpus.unit(g)} (work folder damaged)"
            )
        f = facts.take(pa.array(at))
        root = labels.column("root").to_numpy()
        t = pa.table(
            [root, gid, f.column("id"), f.column("score"), f.column("protected"), f.column("chars")],
            schema=MEMBER_SCHEMA,
        )
        out.add_split(t, corpus.part_of(root, partitions))
        n = t.num_rows
    out.close()
    info = {"group": g, "members": n}
    corpus.mark_done(work, "members", corpus.unit(g), info)
    return info


def rank_keys(score_order: str) -> list[tuple[str, str]]:
    """Sort keys of the survivor rule (after the cluster): protected, score, length, id."""
    return [
        ("protected", "descending"),
        ("rank_score", "ascending"),
        ("chars", "descending"),
        ("id", "ascending"),
        ("gid", "ascending"),  # documents sharing an id (the unique-ids stage): the first file's copy
    ]


def choose_task(args: tuple[int, str, str, str, np.ndarray]) -> dict[str, Any]:
    """One root partition: the survivor of each of its clusters, the members to remove by file group."""
    q, work, reason, score_order, group_of_file = args
    if corpus.is_done(work, "choose", corpus.unit(q)):
        return corpus.read_marker(work, "choose", corpus.unit(q))
    t = corpus.read_folder(os.path.join(work, "members", corpus.unit(q)))
    t = MEMBER_SCHEMA.empty_table() if t is None else t
    score = t.column("score")
    rank = score if score_order == "min" else pc.negate(score)
    t = t.append_column("rank_score", pc.fill_null(rank, float("inf")))
    t = t.sort_by([("root", "ascending"), *rank_keys(score_order)])
    root = t.column("root").to_numpy()
    first = np.r_[True, root[1:] != root[:-1]] if len(root) else np.zeros(0, bool)
    group = np.cumsum(first) - 1
    ids = t.column("id")
    cluster_id = ids.take(pa.array(np.flatnonzero(first)[group]))
    protected = t.column("protected").to_numpy(zero_copy_only=False)
    kept = first | protected
    sizes = np.bincount(group) if len(group) else np.zeros(0, np.int64)
    reasons = pa.array([None if k else reason for k in kept.tolist()], pa.string())
    dups = pa.table(
        {
            "id": ids,
            "cluster_id": cluster_id,
            "kept": pa.array(kept),
            "cluster_size": pa.array(sizes[group], pa.int64()),
            "gid": t.column("gid"),
            "protected": t.column("protected"),
            "score": t.column("score"),
            "chars": t.column("chars"),
            "reason": reasons,
        }
    )
    corpus.write_parquet_atomic(dups, os.path.join(work, "duplicates", f"{corpus.unit(q)}.parquet"))
    gone = dups.filter(pa.array(~kept)).select(REMOVED_SCHEMA.names)
    out = corpus.PartitionWriter(
        os.path.join(work, "removed"), corpus.unit(q), int(group_of_file.max()) + 1, REMOVED_SCHEMA
    )
    out.add_split(gone, group_of_file[corpus.split_gid(gone.column("gid").to_numpy())[0]])
    out.close()
    info = {
        "clusters": int(len(sizes)),
        "docs_in_clusters": int(len(root)),
        "removed": int((~kept).sum()),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "cluster_sizes": {str(s): int(c) for s, c in enumerate(np.bincount(sizes)) if c and s}
        if len(sizes)
        else {},
    }
    corpus.mark_done(work, "choose", corpus.unit(q), info)
    return info


def choose_survivors(
    work: str, partitions: int, group_of_file: np.ndarray, reason: str, score_order: str, executor: Executor
) -> dict[str, Any]:
    """Pass 5: survivors of every cluster (``duplicates/<q>.parquet``, ``removed/<g>/<q>.parquet``)."""
    if corpus.is_done(work, "clusters", "all"):
        return corpus.read_marker(work, "clusters", "all")
    groups = int(group_of_file.max()) + 1
    executor.map(members_task, [(g, work, partitions) for g in range(groups)], "dedup: cluster members")
    parts = executor.map(
        choose_task,
        [(q, work, reason, score_order, group_of_file) for q in range(partitions)],
        "dedup: survivors",
    )
    hist: Counter = Counter()
    for p in parts:
        hist.update(p["cluster_sizes"])
    info = {
        "clusters": sum(p["clusters"] for p in parts),
        "docs_in_clusters": sum(p["docs_in_clusters"] for p in parts),
        "removed": sum(p["removed"] for p in parts),
        "largest_cluster": max((p["largest_cluster"] for p in parts), default=0),
        "cluster_sizes": dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
    }
    corpus.mark_done(work, "clusters", "all", info)
    return info


def read_duplicates(work: str) -> pa.Table:
    """Every cluster member of a finished run (for small corpora, tests and reports: it loads them all)."""
    t = corpus.read_folder(os.path.join(work, "duplicates"))
    if t is None:
        return pa.table({n: pa.array([], pa.string()) for n in ("id", "cluster_id")})
    return t.sort_by([("cluster_id", "ascending"), ("kept", "descending"), ("id", "ascending")])
