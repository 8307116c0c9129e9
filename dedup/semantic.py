"""Semantic dedup (SemDeDup, Abbas et al. 2023; LLaMA-3; NeMo Curator): documents whose embeddings are closer than a
cosine threshold keep one, as passes of executor tasks like the MinHash workflow (:mod:`dedup.workflow`).

1. embed (one task per group of docs files, M tasks): unit vectors of every document (:mod:`classifiers.embeddings`:
   a local Hugging Face encoder, or the shipped word-vector default) to a float16 sidecar ``emb/<file>.npy`` (row r
   = the file's row r), the group's document facts to ``doctable/<g>.parquet``, and its candidates for the k-means
   sample (the documents with the smallest seeded hash of their gid) to ``sample/<g>.npz``.
2. fit (the driver): spherical k-means (scipy ``kmeans2``, seeded k-means++) on the ``sample`` documents of smallest
   hash over all groups: the same sample whatever the grouping, the number of tasks or their order.  The driver holds
   only this bounded sample and the K centroids (``centroids.npy``).
3. assign (M tasks): each document to its nearest centroid, rows written by cluster to ``clusters/<c>/<g>.parquet``.
4. search (one task per cluster, K tasks): cosine of every pair inside the cluster (blocked matrix products), pairs
   at or above ``record_threshold`` to ``sempairs/<q>/<c>.parquet`` by a hash partition of the pair.
5. collect (R tasks): ``verified/<q>.parquet`` (a, b, cosine, kept = cosine >= threshold, ids, cluster), read by the
   distributed connected components and the survivor rule of the MinHash stage (:mod:`dedup.components`,
   :mod:`dedup.survivors`); removal is :func:`dedup.removal.move_to_rejected`.

As in SemDeDup, a pair split by a k-means boundary is not compared (more clusters: faster, fewer pairs found);
``assign_to: 2`` puts each document in its two nearest clusters, which finds more of them (bench/bench_semantic.py:
planted-pair recall 0.64 -> 0.75 on documents that mix random paragraphs, k-means' worst case).  With
``partition_by`` (``lang``), documents of two partition values are never compared.  Every unit leaves a marker; the
work folder is named from the inputs, the settings and the model's files.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from dedup import corpus
from dedup.components import components
from dedup.semantic_embed import SemanticConfig, embed_task, fit_centroids, load_npy, sidecar
from dedup.survivors import choose_survivors
from dedup.text import mix64
from dedup.workflow import DedupResult, _drop, _timed
from pipelines.core.executor import Executor, get_executor
from pipelines.core.folder import Folder, split
from pipelines.core.storage import join

LAYOUT = 1
PAIR_COLUMNS = ["a", "b", "cosine", "kept", "id_a", "id_b", "kmeans_cluster"]


def _vec_array(v: np.ndarray) -> pa.Array:
    """float16 rows as fixed-size binary (one value per document, no list offsets)."""
    v = np.ascontiguousarray(v, np.float16)
    width = v.shape[1] * 2
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(v), [None, pa.py_buffer(v.tobytes())])


def _vec_numpy(col: pa.ChunkedArray, dim: int) -> np.ndarray:
    arr = col.combine_chunks()
    if not len(arr):
        return np.zeros((0, dim), np.float32)
    raw = np.frombuffer(arr.buffers()[1], np.float16)
    return raw[arr.offset * dim : (arr.offset + len(arr)) * dim].reshape(len(arr), dim).astype(np.float32)


def _cluster_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [("part", pa.uint64()), ("gid", pa.uint64()), ("id", pa.string()), ("vec", pa.binary(dim * 2))]
    )


def nearest(x: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """(n, m) the ``m`` nearest centroids of each row, nearest first (ties: the smaller cluster number)."""
    sim = x @ centroids.T
    return np.argsort(-sim, axis=1, kind="stable")[:, : min(m, len(centroids))]


def assign_task(args: tuple[int, list[corpus.InputFile], str, int, int]) -> dict[str, Any]:
    """One group: its documents by their ``assign_to`` nearest centroids, ``clusters/<c>/<g>.parquet``; empty
    vectors (no known word) are similar to nothing and skipped."""
    group, files, work, dim, assign_to = args
    if corpus.is_done(work, "assign", corpus.unit(group)):
        return corpus.read_marker(work, "assign", corpus.unit(group))
    centroids = load_npy(join(work, "centroids.npy"))
    facts = join(work, "doctable", f"{corpus.unit(group)}.parquet")
    ids = corpus.read_table(facts, columns=["gid", "id"])
    out = corpus.PartitionWriter(
        join(work, "clusters"), corpus.unit(group), len(centroids), _cluster_schema(dim)
    )
    at, n = 0, 0
    for f in files:
        emb = load_npy(sidecar(work, f))
        if not len(emb):  # an input whose documents were all rejected
            continue
        g = corpus.gids(f.index, 0, len(emb))
        live = np.abs(emb).sum(1) > 0
        near = nearest(emb[live].astype(np.float32), centroids, assign_to)
        rows = at + np.flatnonzero(live)
        t = pa.table(
            {
                "part": load_npy(sidecar(work, f, ".part"))[live],
                "gid": g[live],
                "id": ids.column("id").take(pa.array(rows)),
                "vec": _vec_array(emb[live]),
            },
            schema=_cluster_schema(dim),
        )
        for k in range(near.shape[1]):
            out.add_split(t, near[:, k].astype(np.int64))
        at += len(emb)
        n += int(live.sum())
    out.close()
    info = {"group": group, "assigned": n}
    corpus.mark_done(work, "assign", corpus.unit(group), info)
    return info


def _pair_schema() -> pa.Schema:
    return pa.schema(
        [
            ("a", pa.uint64()),
            ("b", pa.uint64()),
            ("cosine", pa.float32()),
            ("kept", pa.bool_()),
            ("id_a", pa.string()),
            ("id_b", pa.string()),
            ("kmeans_cluster", pa.int32()),
        ]
    )


def search_task(args: tuple[int, str, SemanticConfig, int]) -> dict[str, Any]:
    """One k-means cluster: every pair of its documents with cosine >= the record threshold (upper triangle)."""
    c, work, cfg, dim = args
    if corpus.is_done(work, "search", corpus.unit(c)):
        return corpus.read_marker(work, "search", corpus.unit(c))
    t = corpus.read_folder(join(work, "clusters", corpus.unit(c)))
    out = corpus.PartitionWriter(join(work, "sempairs"), corpus.unit(c), cfg.partitions, _pair_schema())
    n, found = 0, 0
    if t is not None and t.num_rows > 1:
        t = t.sort_by(
            [("part", "ascending"), ("gid", "ascending")]
        )  # the same order whatever wrote the files
        x = _vec_numpy(t.column("vec"), dim)
        gid, ids, part = t.column("gid").to_numpy(), t.column("id"), t.column("part").to_numpy()
        n = len(x)
        step = cfg.block_rows
        edges = np.flatnonzero(np.r_[True, part[1:] != part[:-1], True])  # one run per partition value
        tiles = [
            (r, c, hi)
            for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)
            for r in range(lo, hi, step)
            for c in range(r, hi, step)
        ]
        for lo, co, hi in tiles:  # a tile: memory block_rows^2 x 4 bytes; never across two partition values
            sim = x[lo : min(lo + step, hi)] @ x[co : min(co + step, hi)].T
            i, j = np.nonzero(sim >= cfg.floor)
            a, b = lo + i, co + j
            upper = b > a  # each pair once, never a document with itself
            cos, a, b = sim[i[upper], j[upper]], a[upper], b[upper]
            pairs = pa.table(
                {
                    "a": gid[a],
                    "b": gid[b],
                    "cosine": cos.astype(np.float32),
                    "kept": cos >= cfg.threshold,
                    "id_a": ids.take(pa.array(a)),
                    "id_b": ids.take(pa.array(b)),
                    "kmeans_cluster": np.full(len(a), c, np.int32),
                },
                schema=_pair_schema(),
            )
            out.add_split(pairs, corpus.part_of(gid[a] ^ mix64(gid[b]), cfg.partitions))
            found += len(a)
    out.close()
    info = {"cluster": c, "docs": n, "pairs": found}
    corpus.mark_done(work, "search", corpus.unit(c), info)
    return info


def collect_task(args: tuple[int, str]) -> dict[str, Any]:
    """One pair partition: ``verified/<q>.parquet`` sorted by pair (the input of the components pass)."""
    q, work = args
    if corpus.is_done(work, "collect", corpus.unit(q)):
        return corpus.read_marker(work, "collect", corpus.unit(q))
    t = corpus.read_folder(join(work, "sempairs", corpus.unit(q)))
    t = (
        _pair_schema().empty_table()
        if t is None
        else t.sort_by([("a", "ascending"), ("b", "ascending"), ("kmeans_cluster", "ascending")])
    )
    if t.num_rows:  # a pair found in several clusters (assign_to > 1) is kept once, with its first cluster
        a, b = t.column("a").to_numpy(), t.column("b").to_numpy()
        t = t.filter(pa.array(np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]))
    corpus.write_parquet_atomic(t, join(work, "verified", f"{corpus.unit(q)}.parquet"))
    info = {"pairs": t.num_rows, "kept_pairs": int(t.column("kept").to_numpy().sum())}
    corpus.mark_done(work, "collect", corpus.unit(q), info)
    return info


def find_semantic_duplicates(
    files: list[corpus.InputFile],
    work_root: str,
    cfg: SemanticConfig,
    reason: str = "dedup:semantic",
    executor: Executor | None = None,
) -> DedupResult:
    """The semantic passes over ``files`` in ``work_root/semantic-<fingerprint>``; resumable at every unit."""
    executor = executor or get_executor(cfg.executor, cfg.workers)
    work = join(
        work_root,
        f"semantic-{corpus.fingerprint(files, {**cfg.identity(), 'reason': reason, 'layout': LAYOUT})}",
    )
    if corpus.is_done(work, "workflow", "stats"):
        return DedupResult(work, files, corpus.read_marker(work, "workflow", "stats"), cfg.tasks)
    needed = [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
    for f in files:
        corpus.check_columns(f.path, needed)
    groups = corpus.file_groups(files, cfg.tasks)
    stats: dict[str, Any] = {"work": work, "threshold": cfg.threshold, "executor": executor.name}
    t0 = time.perf_counter()
    emb = executor.map(embed_task, [(g, fs, cfg, work) for g, fs in enumerate(groups)], "semdedup: embed")
    stats["docs"] = sum(e["docs"] for e in emb)
    stats["skipped_language"] = sum(e.get("skipped_language", 0) for e in emb)  # not in cfg.languages
    dim = emb[0]["dim"]
    t0 = _timed(stats, "embed", t0)
    centroids = fit_centroids(work, len(groups), cfg, dim)
    stats["kmeans_clusters"] = int(len(centroids))
    t0 = _timed(stats, "kmeans", t0)
    items = [(g, fs, work, dim, cfg.assign_to) for g, fs in enumerate(groups)]
    stats["embedded"] = sum(a["assigned"] for a in executor.map(assign_task, items, "semdedup: assign"))
    t0 = _timed(stats, "assign", t0)
    found = executor.map(
        search_task, [(c, work, cfg, dim) for c in range(len(centroids))], "semdedup: search"
    )
    stats["largest_kmeans_cluster"] = max((s["docs"] for s in found), default=0)
    collected = executor.map(collect_task, [(q, work) for q in range(cfg.partitions)], "semdedup: collect")
    stats["pairs_recorded"] = sum(c["pairs"] for c in collected)
    stats["pairs_kept"] = sum(c["kept_pairs"] for c in collected)
    _drop(work, "clusters", "sempairs", "sample")
    t0 = _timed(stats, "search", t0)
    gof = corpus.group_of_files(groups)
    stats.update(components(work, cfg.partitions, gof, executor))
    stats.update(choose_survivors(work, cfg.partitions, gof, reason, cfg.score_order, executor))
    _drop(work, "labels", "members")
    _timed(stats, "clusters", t0)
    corpus.mark_done(work, "workflow", "stats", stats)
    return DedupResult(work, files, stats, cfg.tasks)


def publish_pairs(work: str, path: str) -> int:
    """Every recorded pair (cosine >= record threshold, ``kept`` at the threshold) as one Parquet file."""
    schema = pa.schema([(n, _pair_schema().field(n).type) for n in PAIR_COLUMNS[2:]])
    rows = 0
    out, name = split(path)
    with out.parquet_writer(name, schema, compression="zstd") as w:
        for o in Folder(join(work, "verified")).list(suffix=".parquet", recursive=False):
            t = corpus.read_table(o.path).select(schema.names)
            w.write_table(t.cast(schema))
            rows += t.num_rows
    return rows
