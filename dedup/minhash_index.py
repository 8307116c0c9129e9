"""The index of incremental MinHash dedup (:mod:`dedup.incremental`): generations of survivors' band keys, how a
run's survivors become one, how a run looks its new keys up in them, and how generations are merged.

``<source>/_dedup/minhash-index/``: ``state.json`` (settings identity, generations, covered docs files and their row
counts), ``gen-<k>/keys/<p>.parquet`` (band, key, gid) sorted by key in R hash partitions by key, and
``gen-<k>/docs/<g>.parquet`` (gid, id) by file group.  A gid numbers documents in its generation's own file list
(``files`` in the state); an incremental run renumbers them after its own files (:func:`virtual`).

Lookups read what the new keys can match, not the index: a key file is sorted by key and cut into row groups of
:data:`KEY_ROW_GROUP` rows, so each row group covers one contiguous key range, recorded as min/max statistics in
the Parquet footer (read once per file and cached by path, size and mtime: generation files are never rewritten).
:func:`lookup` keeps the row groups whose range holds a new key (``searchsorted`` of the sorted new keys against
the mins and maxes), reads their key column only, matches by ``searchsorted``, and reads band and gid only of the
row groups with a match.  A run of n new keys against a partition of N index keys reads at most
``min(N, n x KEY_ROW_GROUP)`` keys (band keys are uniform hashes: every group is hit once n exceeds about
N / KEY_ROW_GROUP) plus the footers (~200 bytes per row group).

Compaction keeps the number of generations logarithmic (:func:`merge_from`), as a binary counter: after a run adds
its generation, the newest generations are merged into one while the next older one holds no more keys than they do
together.  Afterwards every generation holds more keys than all newer ones together, so sizes at least double from
newest to oldest: about log2(index / increment) generations, and a key is rewritten about log2 times over the life
of the index (amortised O(log) per key, never a rewrite of the whole index per run).  ``index_generations_max``
caps the count on top (merging the newest).  A merge drops documents no longer in docs/ (a task per generation)
and merges the keys (a task per partition).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup import corpus
from pipelines.core.executor import Executor
from pipelines.core.layout import write_json_atomic

KEYS_SCHEMA = pa.schema([("band", pa.uint8()), ("key", pa.uint64()), ("gid", pa.uint64())])
GEN_DOCS_SCHEMA = pa.schema([("gid", pa.uint64()), ("id", pa.string())])
_U64 = np.uint64
#: rows per row group of a key file: a lookup of n new keys reads at most n row groups of a partition
KEY_ROW_GROUP = 4096


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
    write_keys(t, keys_path(gen_dir, p))
    info = {"partition": p, "keys": t.num_rows}
    corpus.mark_done(work, "index_keys", corpus.unit(p), info)
    return info


def keys_path(gen_dir: str, p: int) -> str:
    return os.path.join(gen_dir, "keys", f"{corpus.unit(p)}.parquet")


def docs_path(gen_dir: str, g: int) -> str:
    return os.path.join(gen_dir, "docs", f"{corpus.unit(g)}.parquet")


def write_keys(t: pa.Table, path: str) -> None:
    """A key file: sorted by key, row groups of :data:`KEY_ROW_GROUP` rows with min/max of the key (delta-coded)."""
    folder, name = corpus.split(path)
    folder.write_table(
        name,
        t.cast(KEYS_SCHEMA).sort_by("key"),
        compression="zstd",
        row_group_size=KEY_ROW_GROUP,
        write_statistics=["key"],
        use_dictionary=["band"],
        column_encoding={"key": "DELTA_BINARY_PACKED"},
    )


@functools.lru_cache(maxsize=4096)
def _ranges(uri: str, size: int, mtime_ns: int) -> tuple[pq.FileMetaData, np.ndarray, np.ndarray]:
    """The footer of a key file and its row groups' key ranges (min, max; empty groups get min > max)."""
    folder, name = corpus.split(uri)
    with folder.open_input_file(name) as f:
        md = pq.ParquetFile(f).metadata
    lo = np.full(md.num_row_groups, np.iinfo(_U64).max, _U64)
    hi = np.zeros(md.num_row_groups, _U64)
    key = md.schema.names.index("key")
    for r in range(md.num_row_groups):
        st = md.row_group(r).column(key).statistics
        if md.row_group(r).num_rows and (st is None or not st.has_min_max):
            lo[r], hi[r] = 0, np.iinfo(_U64).max  # no statistics (a file of another writer): read the group
        elif md.row_group(r).num_rows:
            lo[r], hi[r] = st.min, st.max
    return md, lo, hi


def _chunk_bytes(md: pq.FileMetaData, groups: np.ndarray, columns: list[str]) -> int:
    idx = [md.schema.names.index(c) for c in columns]
    return sum(md.row_group(r).column(c).total_compressed_size for r in groups.tolist() for c in idx)


def lookup(path: str, wanted: np.ndarray, seen: Counter) -> pa.Table:
    """The rows of the key file ``path`` whose key is in ``wanted`` (sorted, unique), reading only the row groups
    whose key range holds a wanted key: their key column, then band and gid of the groups with a match.

    ``seen`` counts row groups and bytes (``row_groups``, ``bytes``: the file; ``*_read``: what was read, column
    chunks as stored plus the footer when it was not cached)."""
    folder, name = corpus.split(path)
    info = folder.info(name)
    if info is None:
        raise FileNotFoundError(
            f"{path}: index key file missing (the index is damaged; delete it for a full run)"
        )
    misses = _ranges.cache_info().misses
    md, lo, hi = _ranges(info.path, info.size, info.mtime_ns)
    seen["row_groups"] += md.num_row_groups
    seen["bytes"] += info.size
    seen["bytes_read"] += md.serialized_size if _ranges.cache_info().misses > misses else 0
    groups = np.flatnonzero(np.searchsorted(wanted, lo, "left") < np.searchsorted(wanted, hi, "right"))
    if not len(groups):
        return KEYS_SCHEMA.empty_table()
    sizes = np.array([md.row_group(r).num_rows for r in groups.tolist()], np.int64)
    with folder.open_input_file(name) as f:
        pf = pq.ParquetFile(f, metadata=md)
        keys = pf.read_row_groups(groups.tolist(), columns=["key"]).column("key").to_numpy()
        pos = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
        hit = np.flatnonzero(wanted[pos] == keys)
        of = np.repeat(np.arange(len(groups)), sizes)[hit]  # which read group each match is in
        matched = np.unique(of)
        rest = pf.read_row_groups(groups[matched].tolist(), columns=["band", "gid"]) if len(hit) else None
    seen["row_groups_read"] += len(groups)
    seen["bytes_read"] += _chunk_bytes(md, groups, ["key"]) + _chunk_bytes(
        md, groups[matched], ["band", "gid"]
    )
    if rest is None:
        return KEYS_SCHEMA.empty_table()
    # a match's row in ``rest``: its group's start there plus its row within the group
    start_read = np.r_[0, np.cumsum(sizes)[:-1]]
    start_rest = np.zeros(len(groups), np.int64)
    start_rest[matched] = np.r_[0, np.cumsum(sizes[matched])[:-1]]
    take = pa.array(start_rest[of] + hit - start_read[of])
    return pa.table(
        {"band": rest.column("band").take(take), "key": keys[hit], "gid": rest.column("gid").take(take)},
        schema=KEYS_SCHEMA,
    )


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
    t = pa.concat_tables(parts)
    write_keys(t, keys_path(merged, p))
    info = {"partition": p, "keys": t.num_rows}
    corpus.mark_done(merged, "merge", corpus.unit(p), info)
    return info


def merge_from(sizes: list[int], most: int) -> int:
    """Where the generations to merge start (their keys ``sizes``, oldest first); ``len(sizes)`` when none are:
    the newest ones while the next older holds no more keys than they do together, and at least enough of the
    newest to leave ``most`` generations."""
    i, tail = len(sizes) - 1, sizes[-1] if sizes else 0
    while i > 0 and sizes[i - 1] <= tail:
        i -= 1
        tail += sizes[i]
    i = min(i, max(most, 1) - 1)
    return i if i < len(sizes) - 1 else len(sizes)


def compact(
    root: str, state: dict[str, Any], docs: str, partitions: int, id_column: str, ex: Executor, start: int = 0
) -> None:
    """Merge the generations from ``start`` on into one, dropping the documents no longer in docs/ (a task per
    generation, then a task per partition); the state names the merged generation before the old ones are
    deleted."""
    merged = os.path.join(
        root, f"gen-{corpus.unit(state['next'])}c"
    )  # never the name of a run's own generation
    gens, names, base = [], [], 0
    for gen in state["gens"][start:]:
        gens.append((os.path.join(root, gen["name"]), base))
        names += gen["files"]
        base += len(gen["files"])
    items = [
        (j, g, state["gens"][start + j]["files"], docs, merged, b, id_column) for j, (g, b) in enumerate(gens)
    ]
    alive = ex.map(alive_task, items, "dedup: index compaction (documents)")
    keys = ex.map(merge_keys_task, [(p, gens, merged) for p in range(partitions)], "dedup: index compaction")
    old = [g for g, _ in gens]
    gen = {"name": os.path.basename(merged), "files": names, "keys": sum(k["keys"] for k in keys)}
    state.update(
        gens=state["gens"][:start] + [gen],
        next=state["next"] + 1,
        compacted_docs=sum(a["alive"] for a in alive),
    )
    write_json_atomic(os.path.join(root, "state.json"), state)
    for g in old:
        corpus.remove_tree(g)
