"""The index of incremental MinHash dedup (:mod:`dedup.incremental`): generations of survivors' band keys, how a
run's survivors become one, how a run looks its new keys up in them, and how generations are merged.

``<source>/_dedup/minhash-index/``: ``state.json`` (settings identity, generations, covered docs files and their row
counts), R hash partitions by key of (band, key, gid) sorted by key, as ``gen-<k>/keys/<p>.parquet`` (key) and
``gen-<k>/rows/<p>.parquet`` (band, gid: same order, same row groups), and ``gen-<k>/docs/<g>.parquet`` (gid, id)
by file group.  A gid numbers documents in its generation's own file list
(``files`` in the state); an incremental run renumbers them after its own files (:func:`virtual`).

Lookups read what the new keys can match, not the index: a key file is sorted and cut into row groups of
:data:`KEY_ROW_GROUP` rows, so each row group covers one contiguous key range, recorded as min/max statistics in
the Parquet footer (read once per file and cached by path, size and mtime: generation files are never rewritten).
:func:`lookup` keeps the row groups whose range holds a new key (``searchsorted`` of the sorted new keys against
the mins and maxes), reads their keys, matches by ``searchsorted``, and reads band and gid (the rows file) only of
the row groups with a match.  A run of n new keys against a partition of N index keys reads at most
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
#: rows per row group of a key file: a lookup of n new keys reads at most n row groups of a partition; the
#: footer costs ~200 bytes per group (2% of the file at 1024 rows)
KEY_ROW_GROUP = 1024


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
    write_keys(t, gen_dir, p)
    info = {"partition": p, "keys": t.num_rows}
    corpus.mark_done(work, "index_keys", corpus.unit(p), info)
    return info


def keys_path(gen_dir: str, p: int) -> str:
    return os.path.join(gen_dir, "keys", f"{corpus.unit(p)}.parquet")


def rows_path(gen_dir: str, p: int) -> str:
    return os.path.join(gen_dir, "rows", f"{corpus.unit(p)}.parquet")


def docs_path(gen_dir: str, g: int) -> str:
    return os.path.join(gen_dir, "docs", f"{corpus.unit(g)}.parquet")


def write_keys(t: pa.Table, gen_dir: str, p: int) -> None:
    """Partition ``p`` of a generation, sorted by key: ``keys/<p>`` (the key, delta-coded, with min/max per row group
    of :data:`KEY_ROW_GROUP` rows) and ``rows/<p>`` (band, gid) in the same order and row groups, so that a lookup
    reads the keys of the groups it needs contiguously and the payload of the groups that matched only."""
    t = t.cast(KEYS_SCHEMA).sort_by("key")
    opts = {"compression": "zstd", "row_group_size": KEY_ROW_GROUP}
    folder, name = corpus.split(rows_path(gen_dir, p))
    folder.write_table(
        name, t.select(["band", "gid"]), use_dictionary=["band"], write_statistics=False, **opts
    )
    folder, name = corpus.split(keys_path(gen_dir, p))
    keys = t.select(["key"])
    folder.write_table(
        name, keys, use_dictionary=False, column_encoding={"key": "DELTA_BINARY_PACKED"}, **opts
    )


def read_keys(gen_dir: str, p: int) -> pa.Table:
    """Partition ``p`` of a generation, whole (compaction)."""
    rows = corpus.read_table(rows_path(gen_dir, p))
    key = corpus.read_table(keys_path(gen_dir, p)).column("key")
    return pa.table({"band": rows.column("band"), "key": key, "gid": rows.column("gid")}, schema=KEYS_SCHEMA)


@functools.lru_cache(maxsize=4096)
def _footer(uri: str, size: int, mtime_ns: int) -> tuple[pq.FileMetaData, np.ndarray, np.ndarray]:
    """A file's Parquet footer and the min and max of its first column per row group (an empty group gets
    min > max, a group without statistics the whole range).  Cached by name, size and mtime: generation files are
    never rewritten."""
    folder, name = corpus.split(uri)
    with folder.open_input_file(name) as f:
        md = pq.ParquetFile(f).metadata
    lo = np.full(md.num_row_groups, np.iinfo(_U64).max, _U64)
    hi = np.zeros(md.num_row_groups, _U64)
    for r in range(md.num_row_groups):
        st = md.row_group(r).column(0).statistics
        if md.row_group(r).num_rows and (st is None or not st.has_min_max or st.physical_type != "INT64"):
            lo[r], hi[r] = 0, np.iinfo(_U64).max
        elif md.row_group(r).num_rows:
            lo[r], hi[r] = st.min, st.max
    return md, lo, hi


class _GenFile:
    """One file of a generation partition, opened for row groups; counts what it reads in ``seen``: ``bytes``
    (the file), ``bytes_read`` (footer when not cached, column chunks as stored)."""

    def __init__(self, path: str, seen: Counter):
        self.folder, self.name = corpus.split(path)
        info = self.info = self.folder.info(self.name)
        if info is None:
            raise FileNotFoundError(
                f"{path}: index file missing (the index is damaged; delete it for a full run)"
            )
        self.seen = seen
        seen["bytes"] += info.size

    @functools.cached_property
    def footer(self) -> tuple[pq.FileMetaData, np.ndarray, np.ndarray]:
        misses = _footer.cache_info().misses
        footer = _footer(self.info.path, self.info.size, self.info.mtime_ns)
        self.seen["bytes_read"] += footer[0].serialized_size if _footer.cache_info().misses > misses else 0
        return footer

    def read(self, groups: np.ndarray) -> pa.Table:
        """Most of the file: one coalesced read (few requests on an object store), counted as the span it covers;
        a few groups: one read per column chunk, counted exactly."""
        md = self.footer[0]
        dense = len(groups) > md.num_row_groups // 2
        chunks = [md.row_group(r).column(c) for r in groups.tolist() for c in range(md.num_columns)]
        starts = [c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset for c in chunks]
        ends = [s + c.total_compressed_size for s, c in zip(starts, chunks, strict=True)]
        spans = zip(starts, ends, strict=True)
        self.seen["bytes_read"] += (max(ends) - min(starts)) if dense else sum(e - s for s, e in spans)
        with self.folder.open_input_file(self.name) as f:
            return pq.ParquetFile(f, metadata=md, pre_buffer=dense).read_row_groups(groups.tolist())


def lookup(gen_dir: str, p: int, wanted: np.ndarray, seen: Counter) -> pa.Table:
    """The rows of partition ``p`` of a generation whose key is in ``wanted`` (sorted, unique), reading only the
    row groups whose key range holds a wanted key: their keys, then band and gid of the groups with a match.

    ``seen`` counts row groups and bytes (``row_groups``, ``bytes``: the files; ``*_read``: what was read)."""
    keys_file, rows_file = _GenFile(keys_path(gen_dir, p), seen), _GenFile(rows_path(gen_dir, p), seen)
    md, lo, hi = keys_file.footer  # the rows file's footer is read only when a key matched
    seen["row_groups"] += md.num_row_groups
    groups = np.flatnonzero(np.searchsorted(wanted, lo, "left") < np.searchsorted(wanted, hi, "right"))
    if not len(groups):
        return KEYS_SCHEMA.empty_table()
    seen["row_groups_read"] += len(groups)
    keys = keys_file.read(groups).column("key").to_numpy()
    hit = np.flatnonzero(wanted[np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)] == keys)
    if not len(hit):
        return KEYS_SCHEMA.empty_table()
    sizes = np.array([md.row_group(r).num_rows for r in groups.tolist()], np.int64)
    of = np.repeat(np.arange(len(groups)), sizes)[hit]  # which read group each match is in
    matched = np.unique(of)
    rest = rows_file.read(groups[matched])
    # a match's row in ``rest``: its group's start there plus its row within the group
    start_rest = np.zeros(len(groups), np.int64)
    start_rest[matched] = np.r_[0, np.cumsum(sizes[matched])[:-1]]
    take = pa.array(start_rest[of] + hit - np.r_[0, np.cumsum(sizes)[:-1]][of])
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
        t = read_keys(gen_dir, p)
        t = t.set_column(2, "gid", pa.array(virtual(t.column("gid").to_numpy(), base)))
        parts.append(t.filter(pa.array(np.isin(t.column("gid").to_numpy(), alive))))
    t = pa.concat_tables(parts)
    write_keys(t, merged, p)
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
