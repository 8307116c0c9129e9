"""The index of incremental MinHash dedup (:mod:`dedup.incremental`): generations of survivors' band keys, how a
run's survivors become one, and how generations are compacted into one.

``<source>/_dedup/minhash-index/``: ``state.json`` (settings identity, generations, covered docs files and their row
counts), ``gen-<k>/keys/<p>.parquet`` (band, key, gid) sorted by key in R hash partitions by key, and
``gen-<k>/docs/<g>.parquet`` (gid, id) by file group.  A gid numbers documents in its generation's own file list
(``files`` in the state); an incremental run renumbers them after its own files (:func:`virtual`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup import corpus
from pipelines.core.executor import Executor
from pipelines.core.layout import write_json_atomic

KEYS_SCHEMA = pa.schema([("band", pa.uint8()), ("key", pa.uint64()), ("gid", pa.uint64())])
GEN_DOCS_SCHEMA = pa.schema([("gid", pa.uint64()), ("id", pa.string())])
_U64 = np.uint64


def index_root(source_dir: str) -> str:
    return os.path.join(source_dir, "_dedup", "minhash-index")


def load_state(root: str) -> dict[str, Any]:
    folder = corpus.Folder(root)
    return folder.read_json("state.json") if folder.isfile("state.json") else {}


# --- building a generation from a finished run's work folder (band keys kept) -------------------------------


def _removed_gids(work: str) -> np.ndarray:
    # removed/ only: the rest of the work folder has other tasks' markers appearing under temporary names
    paths = [o.path for o in corpus.Folder(work).child("removed").list("*/*.parquet")]
    parts = [corpus.read_table(p, columns=["gid"]).column("gid").to_numpy() for p in paths]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, _U64)


def _kept(gid: np.ndarray, removed: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """Survivors among ``gid``: not removed, not of a protected (reference or old) file."""
    return ~np.isin(gid, removed) & ~protected[corpus.split_gid(gid)[0]]


def index_docs_task(args: tuple[int, str, str, np.ndarray]) -> dict[str, Any]:
    """One file group: ``gen/docs/<g>.parquet`` (gid, id) of its survivors."""
    g, work, gen_dir, protected = args
    if corpus.is_done(work, "index_docs", corpus.unit(g)):
        return corpus.read_marker(work, "index_docs", corpus.unit(g))
    facts = corpus.read_table(
        os.path.join(work, "doctable", f"{corpus.unit(g)}.parquet"), columns=["gid", "id"]
    )
    removed = corpus.read_folder(os.path.join(work, "removed", corpus.unit(g)), ["gid"])
    gone = removed.column("gid").to_numpy() if removed is not None else np.zeros(0, _U64)
    keep = _kept(facts.column("gid").to_numpy(), gone, protected)
    corpus.write_parquet_atomic(facts.filter(pa.array(keep)).cast(GEN_DOCS_SCHEMA), docs_path(gen_dir, g))
    info = {"group": g, "docs": int(keep.sum())}
    corpus.mark_done(work, "index_docs", corpus.unit(g), info)
    return info


def index_keys_task(args: tuple[int, str, str, np.ndarray]) -> dict[str, Any]:
    """One partition: ``gen/keys/<p>.parquet``, the band keys of the run's survivors sorted by key."""
    p, work, gen_dir, protected = args
    if corpus.is_done(work, "index_keys", corpus.unit(p)):
        return corpus.read_marker(work, "index_keys", corpus.unit(p))
    t = corpus.read_folder(os.path.join(work, "bands", corpus.unit(p)))
    t = KEYS_SCHEMA.empty_table() if t is None else t
    t = t.filter(pa.array(_kept(t.column("gid").to_numpy(), _removed_gids(work), protected)))
    corpus.write_parquet_atomic(t.sort_by("key").cast(KEYS_SCHEMA), keys_path(gen_dir, p))
    info = {"partition": p, "keys": t.num_rows}
    corpus.mark_done(work, "index_keys", corpus.unit(p), info)
    return info


def keys_path(gen_dir: str, p: int) -> str:
    return os.path.join(gen_dir, "keys", f"{corpus.unit(p)}.parquet")


def docs_path(gen_dir: str, g: int) -> str:
    return os.path.join(gen_dir, "docs", f"{corpus.unit(g)}.parquet")


def build_generation(
    work: str,
    run_files: list[corpus.InputFile],
    groups: int,
    partitions: int,
    gen_dir: str,
    docs: str,
    ex: Executor,
) -> dict[str, Any]:
    """The survivors of a run (its first ``groups`` file groups) as an index generation; drops the band keys."""
    protected = np.array([f.protected for f in run_files], bool)
    ex.map(index_docs_task, [(g, work, gen_dir, protected) for g in range(groups)], "dedup: index docs")
    keys = ex.map(index_keys_task, [(p, work, gen_dir, protected) for p in range(partitions)], "dedup: index")
    corpus.remove_tree(os.path.join(work, "bands"))
    files = ["" if f.protected else os.path.relpath(f.path, docs) for f in run_files]
    return {"name": os.path.basename(gen_dir), "files": files, "keys": sum(k["keys"] for k in keys)}


def virtual(old: np.ndarray, base: int) -> np.ndarray:
    """Gids of a generation (its own file numbering) as gids of this run (its files from ``base`` on)."""
    fidx, row = corpus.split_gid(old)
    return ((fidx + base).astype(_U64) << _U64(corpus.ROW_BITS)) | row.astype(_U64)


# --- compaction -----------------------------------------------------------------------------------------------


def alive_task(args: tuple[int, str, list[str], str, str, int, str]) -> dict[str, Any]:
    """One generation: its documents still in docs/ (by id), renumbered from ``base``, to ``merged/docs/<j>``."""
    j, gen_dir, names, docs, merged, base, id_column = args
    if corpus.is_done(merged, "alive", corpus.unit(j)):
        return corpus.read_marker(merged, "alive", corpus.unit(j))
    t = corpus.read_folder(os.path.join(gen_dir, "docs"))
    t = GEN_DOCS_SCHEMA.empty_table() if t is None else t.cast(GEN_DOCS_SCHEMA)
    fidx = corpus.split_gid(t.column("gid").to_numpy())[0]
    alive = np.zeros(t.num_rows, bool)
    for fi in np.unique(fidx).tolist():
        path = os.path.join(docs, names[fi])
        if corpus.exists(path):
            sel = np.flatnonzero(fidx == fi)
            have = corpus.read_table(path, columns=[id_column]).column(id_column)
            alive[sel] = pc.is_in(t.column("id").take(pa.array(sel)), value_set=have).to_numpy(
                zero_copy_only=False
            )
    t = t.filter(pa.array(alive))
    t = t.set_column(0, "gid", pa.array(virtual(t.column("gid").to_numpy(), base)))
    corpus.write_parquet_atomic(t, docs_path(merged, j))
    info = {"generation": j, "docs": int(len(alive)), "alive": t.num_rows}
    corpus.mark_done(merged, "alive", corpus.unit(j), info)
    return info


def merge_keys_task(args: tuple[int, list[tuple[str, int]], str]) -> dict[str, Any]:
    """One partition: the keys of every generation, renumbered, of documents still alive, sorted by key."""
    p, gens, merged = args
    if corpus.is_done(merged, "merge", corpus.unit(p)):
        return corpus.read_marker(merged, "merge", corpus.unit(p))
    alive = np.sort(corpus.read_folder(os.path.join(merged, "docs"), ["gid"]).column("gid").to_numpy())
    parts = []
    for gen_dir, base in gens:
        t = corpus.read_table(keys_path(gen_dir, p))
        t = t.set_column(2, "gid", pa.array(virtual(t.column("gid").to_numpy(), base)))
        parts.append(t.filter(pa.array(np.isin(t.column("gid").to_numpy(), alive))))
    t = pa.concat_tables(parts).sort_by("key")
    corpus.write_parquet_atomic(t, keys_path(merged, p))
    info = {"partition": p, "keys": t.num_rows}
    corpus.mark_done(merged, "merge", corpus.unit(p), info)
    return info


def compact(
    root: str, state: dict[str, Any], docs: str, partitions: int, id_column: str, ex: Executor
) -> None:
    """Merge every generation into one, dropping the documents no longer in docs/ (a task per generation, then
    a task per partition); the state names the merged generation before the old ones are deleted."""
    merged = os.path.join(
        root, f"gen-{corpus.unit(state['next'])}c"
    )  # never the name of a run's own generation
    gens, names, base = [], [], 0
    for gen in state["gens"]:
        gens.append((os.path.join(root, gen["name"]), base))
        names += gen["files"]
        base += len(gen["files"])
    items = [(j, g, state["gens"][j]["files"], docs, merged, b, id_column) for j, (g, b) in enumerate(gens)]
    alive = ex.map(alive_task, items, "dedup: index compaction (documents)")
    keys = ex.map(merge_keys_task, [(p, gens, merged) for p in range(partitions)], "dedup: index compaction")
    old = [g for g, _ in gens]
    gen = {"name": os.path.basename(merged), "files": names, "keys": sum(k["keys"] for k in keys)}
    state.update(gens=[gen], next=state["next"] + 1, compacted_docs=sum(a["alive"] for a in alive))
    write_json_atomic(os.path.join(root, "state.json"), state)
    for g in old:
        corpus.remove_tree(g)
