"""Connected components of the verified pairs, distributed: alternating large-star / small-star steps.

The algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014): every step is one
map-reduce over the edge list, and alternating the two steps turns each component into a star around its smallest
node in O(log^2 n) steps (in practice a handful on duplicate clusters, whose diameter is small).  Here each step is
R executor tasks: task ``p`` reads the edges keyed at its nodes (``cc/<step>/<p>/*.parquet``, each undirected
edge stored at both ends), groups them by node, and writes the new edges to ``cc/<step+1>/<p'>/<p>.parquet``
(p' the partition of the node it is keyed at).  So a step leaves R x R files whatever the graph.

* large-star: for node u with neighbours N(u) and m = min(N(u) + u), link every neighbour v > u to m;
* small-star: for node u with smaller neighbours S(u) and m = min(S(u) + u), link every v in S(u) + u to m.

Convergence is checked without collecting edges: each task returns the count and an order-free 64-bit digest of
the distinct edges it read; when a large-star step reads the same edge set as the previous one, the graph is a set
of stars and the last pass writes ``labels/<g>/<p>.parquet`` (node, root) by the file group of the node.  The
driver holds two integers per step.  Every step's tasks leave markers; a step's inputs are deleted once the step
after it is complete.

A graph whose edge count the caller knows to be small (MinHash: ``components_one_task_edges``, 2M verified pairs)
is labelled by one task instead (scipy's connected components, :func:`one_task`): the same labels, without rounds
whose cost at that size is R x R small files each.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from dedup import corpus
from dedup.text import mix64
from pipelines.core.executor import Executor

_U64 = np.uint64
EDGE_SCHEMA = pa.schema([("u", pa.uint64()), ("v", pa.uint64())])
LABEL_SCHEMA = pa.schema([("gid", pa.uint64()), ("root", pa.uint64())])
#: a bound on steps, far above what any real graph needs (the check that it converged)
MAX_STEPS = 200


def _write_edges(out: corpus.PartitionWriter, x: np.ndarray, y: np.ndarray, partitions: int) -> None:
    """Undirected edges ``{x, y}``, stored at both ends."""
    u, v = np.concatenate([x, y]), np.concatenate([y, x])
    out.add_split(pa.table({"u": u, "v": v}, schema=EDGE_SCHEMA), corpus.part_of(u, partitions))


def seed_task(args: tuple[int, str, int]) -> dict[str, Any]:
    """Step 0: the kept pairs of ``verified/<q>.parquet`` as edges keyed at both ends."""
    q, work, partitions = args
    if corpus.is_done(work, "cc_seed", corpus.unit(q)):
        return corpus.read_marker(work, "cc_seed", corpus.unit(q))
    out = corpus.PartitionWriter(
        os.path.join(work, "cc", corpus.unit(0)), corpus.unit(q), partitions, EDGE_SCHEMA
    )
    t = None
    path = os.path.join(work, "verified", f"{corpus.unit(q)}.parquet")
    if corpus.exists(path):
        t = corpus.read_table(path, columns=["a", "b", "kept"])
        t = t.filter(t.column("kept"))
        _write_edges(out, t.column("a").to_numpy(), t.column("b").to_numpy(), partitions)
    out.close()
    info = {"edges": 0 if t is None else t.num_rows}
    corpus.mark_done(work, "cc_seed", corpus.unit(q), info)
    return info


def _grouped(work: str, step: int, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct edges keyed at partition ``p``'s nodes sorted by (u, v): ``(u, v, first row of each node, node
    number of each row)``."""
    t = corpus.read_folder(os.path.join(work, "cc", corpus.unit(step), corpus.unit(p)))
    if t is None or not t.num_rows:
        z = np.zeros(0, _U64)
        return z, z, np.zeros(0, np.int64), np.zeros(0, np.int64)
    uv = np.unique(np.stack([t.column("u").to_numpy(), t.column("v").to_numpy()], axis=1), axis=0)
    u, v = uv[:, 0].copy(), uv[:, 1].copy()
    first = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    grp = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(u)]))
    return u, v, first, grp


def _min_by_node(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    return np.minimum.reduceat(x, first) if len(x) else np.zeros(0, _U64)


def step_task(args: tuple[int, int, str, int, str, np.ndarray]) -> dict[str, Any]:
    """One large-star / small-star step (or the final labels) over partition ``p``; returns the digest of the edges
    it read."""
    step, p, work, partitions, kind, group_of_file = args
    name = f"{corpus.unit(step)}-{corpus.unit(p)}-{kind}"
    if corpus.is_done(work, "cc_step", name):
        return corpus.read_marker(work, "cc_step", name)
    u, v, first, grp = _grouped(work, step, p)
    once = u < v  # every undirected edge is stored at both ends: count it at its smaller one
    digest = int(np.bitwise_xor.reduce(mix64(mix64(u[once]) ^ v[once]))) if once.any() else 0
    node = u[first]
    if kind == "labels":  # a star forest: a node's root is the smallest of itself and its neighbours
        groups = int(group_of_file.max()) + 1
        out = corpus.PartitionWriter(os.path.join(work, "labels"), corpus.unit(p), groups, LABEL_SCHEMA)
        root = np.minimum(node, _min_by_node(v, first))
        out.add_split(
            pa.table({"gid": node, "root": root}, schema=LABEL_SCHEMA),
            group_of_file[corpus.split_gid(node)[0]],
        )
    else:
        out = corpus.PartitionWriter(
            os.path.join(work, "cc", corpus.unit(step + 1)), corpus.unit(p), partitions, EDGE_SCHEMA
        )
        if kind == "large":  # link each larger neighbour to m = min(N(u) + u)
            m = np.minimum(node, _min_by_node(v, first))[grp]
            sel = v > u
            _write_edges(out, v[sel], m[sel], partitions)
        else:  # link each smaller neighbour, and u itself, to m = min(S(u) + u)
            smaller = v < u
            m_node = np.minimum(node, _min_by_node(np.where(smaller, v, np.iinfo(np.uint64).max), first))
            m = m_node[grp]
            sel = smaller & (v != m)
            _write_edges(out, v[sel], m[sel], partitions)
            moved = m_node != node
            _write_edges(out, node[moved], m_node[moved], partitions)
    out.close()
    info = {"edges": int(once.sum()), "digest": digest}
    corpus.mark_done(work, "cc_step", name, info)
    return info


def min_labels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(node, root)``: every node of the edges ``(a, b)`` and its component's smallest node (scipy's connected
    components over the graph in one task)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inv = np.unique(
        np.concatenate([a, b]), return_inverse=True
    )  # sorted: a smaller index, a smaller node
    n = len(nodes)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (inv[: len(a)], inv[len(a) :])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    _, first = np.unique(component, return_index=True)  # each component's first (smallest) node index
    return nodes, nodes[first[component]]


def one_task(args: tuple[str, int, np.ndarray]) -> dict[str, Any]:
    """All components in one task, for a graph small enough for one worker: the kept pairs of every
    ``verified/<q>.parquet`` to ``labels/<g>/00000.parquet``, the labels the star steps reach (smallest gid)."""
    work, partitions, group_of_file = args
    tables = []
    for q in range(partitions):
        path = os.path.join(work, "verified", f"{corpus.unit(q)}.parquet")
        if corpus.exists(path):
            t = corpus.read_table(path, columns=["a", "b", "kept"])
            tables.append(t.filter(t.column("kept")))
    t = pa.concat_tables(tables) if tables else None
    if t is None or not t.num_rows:
        return {"cc_steps": 0, "edges": 0}
    node, root = min_labels(t.column("a").to_numpy(), t.column("b").to_numpy())
    groups = int(group_of_file.max()) + 1
    out = corpus.PartitionWriter(os.path.join(work, "labels"), corpus.unit(0), groups, LABEL_SCHEMA)
    out.add_split(
        pa.table({"gid": node, "root": root}, schema=LABEL_SCHEMA), group_of_file[corpus.split_gid(node)[0]]
    )
    out.close()
    return {"cc_steps": 1, "edges": t.num_rows}


def components(
    work: str,
    partitions: int,
    group_of_file: np.ndarray,
    executor: Executor,
    edges: int | None = None,
    one_task_max: int = 0,
) -> dict[str, Any]:
    """Labels every node of the verified graph with its component's smallest gid (``labels/<g>/<p>.parquet``).

    When the caller knows the graph's ``edges`` (the verified pairs) and they are at most ``one_task_max``, one
    task labels it (:func:`one_task`) instead of large/small-star rounds of R tasks each: the same labels without
    the rounds' R x R small files per step, which are their whole cost at small sizes."""
    if corpus.is_done(work, "components", "all"):
        return corpus.read_marker(work, "components", "all")
    if edges is not None and edges <= one_task_max:
        info = executor.map(one_task, [(work, partitions, group_of_file)], "dedup: components")[0]
        corpus.mark_done(work, "components", "all", info)
        return info
    seeds = executor.map(seed_task, [(q, work, partitions) for q in range(partitions)], "dedup: components")
    step, last = 0, None
    if not sum(s["edges"] for s in seeds):  # no duplicate at all: nothing to label
        info = {"cc_steps": 0, "edges": 0}
        corpus.mark_done(work, "components", "all", info)
        return info
    while True:
        if step >= MAX_STEPS:
            raise RuntimeError(f"connected components did not converge in {MAX_STEPS} steps ({work})")
        kind = "large" if step % 2 == 0 else "small"
        infos = executor.map(
            step_task,
            [(step, p, work, partitions, kind, group_of_file) for p in range(partitions)],
            f"dedup: cc step {step}",
        )
        digest = 0
        for i in infos:
            digest ^= i["digest"]
        seen = (sum(i["edges"] for i in infos), digest)
        if step >= 2:  # the inputs of step - 1 are no longer needed (step's outputs are complete)
            corpus.remove_tree(os.path.join(work, "cc", corpus.unit(step - 1)))
        if kind == "large" and seen == last:
            break
        if kind == "large":
            last = seen
        step += 1
    executor.map(
        step_task,
        [(step, p, work, partitions, "labels", group_of_file) for p in range(partitions)],
        "dedup: component labels",
    )
    info = {"cc_steps": step + 1, "edges": int(sum(s["edges"] for s in seeds))}
    corpus.mark_done(work, "components", "all", info)
    corpus.remove_tree(os.path.join(work, "cc"))
    return info
