"""Incremental MinHash dedup for cron: new docs files are deduplicated against an index of what was kept before.

The rule: documents that survived an earlier run stay; they take part as protected documents (like references):
a new document near one of them goes, they never go.  So "A, then A+B" removes from B exactly what one MinHash run
over B with A's survivors as references removes.  A B document similar only to an A document that A's own dedup
removed is judged against A's survivors only (the removed one is not in the index).

The index (``<source>/_dedup/minhash-index/``): one generation per run, ``gen-<k>/keys/<p>.parquet`` (band, key,
gid: the band keys of that run's survivors, R hash partitions by key like the band pass, sorted by key) and
``gen-<k>/docs/<g>.parquet`` (gid, id: which document a gid was, by file group).  ``state.json`` holds the settings
the index was built with, the generations (each with the docs file names its gids number) and ``covered``: every
docs file the index covers with its row count after that run.

An incremental run (same settings, every covered file still has at most its recorded rows, i.e. later stages only
removed or rewrote rows) works on the new files only: their signatures; a bucket task per partition joins their
keys with the index partitions (only matching index rows are kept; pairs between two old documents are dropped);
a locate task per generation looks up its candidate documents by id in the current docs files and reads only those
rows (``located/<g>.parquet``); verification, components, survivors and removal as in a full run, old documents
protected; then the new survivors' keys become the next generation.  Compaction: when generations exceed
``index_generations_max``, a task per generation keeps the documents still in docs/ and a task per partition merges
the keys into one generation.  Anything else (no index, changed settings, a covered file that grew) is a full run,
which rebuilds the index from its own band keys.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from dedup.corpus import (
    DOC_TABLE_SCHEMA,
    PAIR_SCHEMA,
    ROW_BITS,
    InputFile,
    PartitionWriter,
    doc_table,
    file_groups,
    fingerprint,
    group_of_files,
    is_done,
    mark_done,
    read_folder,
    read_marker,
    read_rows,
    split_gid,
    unit,
    write_parquet_atomic,
)
from dedup.minhash import MinHashConfig, _bucket_pairs, signature_task, write_pairs
from dedup.workflow import LAYOUT, DedupResult, after_buckets, find_near_duplicates
from pipelines.core.executor import Executor
from pipelines.core.layout import write_json_atomic

INDEX_LAYOUT = 1
KEYS_SCHEMA = pa.schema([("band", pa.uint8()), ("key", pa.uint64()), ("gid", pa.uint64())])
GEN_DOCS_SCHEMA = pa.schema([("gid", pa.uint64()), ("id", pa.string())])
LOCATED_SCHEMA = pa.schema([("gid", pa.uint64()), ("text", pa.large_string())])
_U64 = np.uint64


def index_root(source_dir: str) -> str:
    return os.path.join(source_dir, "_dedup", "minhash-index")


def load_state(root: str) -> dict[str, Any]:
    path = os.path.join(root, "state.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def index_identity(cfg: MinHashConfig, reason: str) -> str:
    """The settings an index is only valid for (a change means a full run)."""
    return fingerprint([], {**cfg.identity(), "reason": reason, "layout": LAYOUT, "index": INDEX_LAYOUT})


def _rows(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def new_files(state: dict[str, Any], ident: str, docs: str, files: list[InputFile]) -> list[InputFile] | None:
    """The docs files the index does not cover when the run can be incremental; None when it must be full."""
    if not state or state.get("identity") != ident:
        return None
    covered = state["covered"]
    out = []
    for f in files:
        name = os.path.relpath(f.path, docs)
        if f.protected:
            continue
        if name not in covered:
            out.append(f)
        elif _rows(f.path) > covered[name]:  # rows removal cannot explain: the file was rewritten
            return None
    return out


# --- building a generation from a finished run's work folder (band keys kept) -------------------------------


def _removed_gids(work: str) -> np.ndarray:
    paths = glob.glob(os.path.join(work, "removed", "*", "*.parquet"))
    parts = [pq.read_table(p, columns=["gid"]).column("gid").to_numpy() for p in paths]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, _U64)


def _kept(gid: np.ndarray, removed: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """Survivors among ``gid``: not removed, not of a protected (reference or old) file."""
    return ~np.isin(gid, removed) & ~protected[split_gid(gid)[0]]


def index_docs_task(args: tuple[int, str, str, np.ndarray]) -> dict[str, Any]:
    """One file group: ``gen/docs/<g>.parquet`` (gid, id) of its survivors."""
    g, work, gen_dir, protected = args
    if is_done(work, "index_docs", unit(g)):
        return read_marker(work, "index_docs", unit(g))
    facts = pq.read_table(os.path.join(work, "doctable", f"{unit(g)}.parquet"), columns=["gid", "id"])
    removed = read_folder(os.path.join(work, "removed", unit(g)), ["gid"])
    gone = removed.column("gid").to_numpy() if removed is not None else np.zeros(0, _U64)
    keep = _kept(facts.column("gid").to_numpy(), gone, protected)
    write_parquet_atomic(facts.filter(pa.array(keep)).cast(GEN_DOCS_SCHEMA), _docs_path(gen_dir, g))
    info = {"group": g, "docs": int(keep.sum())}
    mark_done(work, "index_docs", unit(g), info)
    return info


def index_keys_task(args: tuple[int, str, str, np.ndarray]) -> dict[str, Any]:
    """One partition: ``gen/keys/<p>.parquet``, the band keys of the run's survivors sorted by key."""
    p, work, gen_dir, protected = args
    if is_done(work, "index_keys", unit(p)):
        return read_marker(work, "index_keys", unit(p))
    t = read_folder(os.path.join(work, "bands", unit(p)))
    t = KEYS_SCHEMA.empty_table() if t is None else t
    t = t.filter(pa.array(_kept(t.column("gid").to_numpy(), _removed_gids(work), protected)))
    write_parquet_atomic(t.sort_by("key").cast(KEYS_SCHEMA), _keys_path(gen_dir, p))
    info = {"partition": p, "keys": t.num_rows}
    mark_done(work, "index_keys", unit(p), info)
    return info


def _keys_path(gen_dir: str, p: int) -> str:
    return os.path.join(gen_dir, "keys", f"{unit(p)}.parquet")


def _docs_path(gen_dir: str, g: int) -> str:
    return os.path.join(gen_dir, "docs", f"{unit(g)}.parquet")


def build_generation(
    work: str, run_files: list[InputFile], groups: int, partitions: int, gen_dir: str, docs: str, ex: Executor
) -> dict[str, Any]:
    """The survivors of a run (its first ``groups`` file groups) as an index generation; drops the band keys."""
    protected = np.array([f.protected for f in run_files], bool)
    ex.map(index_docs_task, [(g, work, gen_dir, protected) for g in range(groups)], "dedup: index docs")
    keys = ex.map(index_keys_task, [(p, work, gen_dir, protected) for p in range(partitions)], "dedup: index")
    shutil.rmtree(os.path.join(work, "bands"), ignore_errors=True)
    files = ["" if f.protected else os.path.relpath(f.path, docs) for f in run_files]
    return {"name": os.path.basename(gen_dir), "files": files, "keys": sum(k["keys"] for k in keys)}


# --- the incremental passes -----------------------------------------------------------------------------------


def _virtual(old: np.ndarray, base: int) -> np.ndarray:
    """Gids of a generation (its own file numbering) as gids of this run (its files from ``base`` on)."""
    fidx, row = split_gid(old)
    return ((fidx + base).astype(_U64) << _U64(ROW_BITS)) | row.astype(_U64)


def inc_bucket_task(
    args: tuple[int, MinHashConfig, str, list[tuple[str, int]], np.ndarray, np.ndarray],
) -> dict:
    """One partition: the new band keys with the index rows that share a key; the pairs not between two protected
    documents to ``pairs/``, the old documents they name to ``oldneed/<g>/<p>.parquet``."""
    p, cfg, work, gens, protected, gof = args
    name = unit(p)
    if is_done(work, "buckets", name):
        return read_marker(work, "buckets", name)
    first_old = gens[0][1] if gens else len(protected)
    new = read_folder(os.path.join(work, "bands", name))
    out = PartitionWriter(os.path.join(work, "pairs"), name, cfg.partitions, PAIR_SCHEMA)
    need = PartitionWriter(os.path.join(work, "oldneed"), name, int(gof.max()) + 1, GEN_DOCS_SCHEMA.remove(1))
    info = {"partition": p, "rows": 0, "index_rows": 0, "pairs": 0}
    if new is not None and new.num_rows:
        wanted = np.unique(new.column("key").to_numpy())
        parts = [new.cast(KEYS_SCHEMA)]
        for gen_dir, base in gens:
            path = _keys_path(gen_dir, p)
            hit = np.isin(pq.read_table(path, columns=["key"]).column("key").to_numpy(), wanted)
            if hit.any():
                old = pq.read_table(path).filter(pa.array(hit))
                parts.append(old.set_column(2, "gid", pa.array(_virtual(old.column("gid").to_numpy(), base))))
                info["index_rows"] += int(hit.sum())
        t = pa.concat_tables(parts)
        info["rows"] = t.num_rows
        a, b = _bucket_pairs(t, cfg.all_pairs_max_bucket)
        keep = ~(protected[split_gid(a)[0]] & protected[split_gid(b)[0]])  # two old/reference docs: both stay
        a, b = a[keep], b[keep]
        info["pairs"] = write_pairs(out, a, b, cfg.partitions)
        olds = np.unique(np.concatenate([a, b]))
        olds = olds[split_gid(olds)[0] >= first_old]
        need.add_split(pa.table({"gid": olds}, schema=GEN_DOCS_SCHEMA.remove(1)), gof[split_gid(olds)[0]])
    out.close()
    need.close()
    mark_done(work, "buckets", name, info)
    return info


def locate_task(args: tuple[int, str, str, int, list[str], str, MinHashConfig]) -> dict[str, Any]:
    """One generation (one file group): its candidate documents looked up by id in the current docs files, only
    their rows read; ``doctable/<g>`` (facts, protected) and ``located/<g>`` (texts).  A document no longer in
    docs/ (removed by a later stage) keeps its id, with an empty text: no verified pair reaches it."""
    g, work, gen_dir, base, names, docs, cfg = args
    if is_done(work, "locate", unit(g)):
        return read_marker(work, "locate", unit(g))
    need = read_folder(os.path.join(work, "oldneed", unit(g)))
    gids = np.unique(need.column("gid").to_numpy()) if need is not None else np.zeros(0, _U64)
    fidx, row = split_gid(gids)
    fidx = fidx - base
    old_gid = (fidx.astype(_U64) << _U64(ROW_BITS)) | row.astype(_U64)
    known = pds.dataset(os.path.join(gen_dir, "docs")).to_table(
        filter=pc.field("gid").isin(pa.array(old_gid))
    )
    known = known.sort_by("gid")
    ids = known.column("id").take(pa.array(np.searchsorted(known.column("gid").to_numpy(), old_gid)))
    cols = list(
        dict.fromkeys([cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else []))
    )
    parts, found = [], 0
    for fi in np.unique(fidx).tolist():
        sel = np.flatnonzero(fidx == fi)
        path = os.path.join(docs, names[fi])
        t = pa.table(
            {
                c: ids.take(pa.array(sel)) if c == cfg.id_column else pa.nulls(len(sel), pa.string())
                for c in cols
            }
        )
        if os.path.exists(path):
            have = pq.read_table(path, columns=[cfg.id_column]).column(cfg.id_column)
            at = pc.index_in(ids.take(pa.array(sel)), value_set=have)
            ok = pc.is_valid(at).to_numpy(zero_copy_only=False)
            rows = at.filter(pa.array(ok)).to_numpy().astype(np.int64)
            if ok.any():  # read_rows returns the rows in file order: put them back in gid order
                got = read_rows(path, rows, cols)
                got = got.take(pa.array(np.argsort(np.argsort(rows, kind="stable"), kind="stable")))
                t = pa.concat_tables([got, t.filter(pa.array(~ok)).cast(got.schema)])
                sel = np.r_[sel[ok], sel[~ok]]
                found += int(ok.sum())
        parts.append(doc_table(t, gids[sel], cfg.id_column, cfg.score_column, True, cfg.text_column))
        texts = pc.fill_null(t.column(cfg.text_column).cast(pa.large_string()), "")
        parts[-1] = (parts[-1], pa.table({"gid": pa.array(gids[sel], pa.uint64()), "text": texts}))
    facts = pa.concat_tables([f for f, _ in parts]) if parts else DOC_TABLE_SCHEMA.empty_table()
    write_parquet_atomic(facts.sort_by("gid"), os.path.join(work, "doctable", f"{unit(g)}.parquet"))
    texts = pa.concat_tables([x for _, x in parts]) if parts else LOCATED_SCHEMA.empty_table()
    write_parquet_atomic(texts.sort_by("gid"), _located(work, g))
    info = {"group": g, "candidates": int(len(gids)), "found": found}
    mark_done(work, "locate", unit(g), info)
    return info


def _located(work: str, g: int) -> str:
    return os.path.join(work, "located", f"{unit(g)}.parquet")


def find_new_duplicates(
    work_root: str,
    cfg: MinHashConfig,
    reason: str,
    files: list[InputFile],
    state: dict[str, Any],
    root: str,
    docs: str,
    executor: Executor,
) -> DedupResult:
    """The MinHash passes over ``files`` (the new docs files, then references) against the index generations.

    The run's files are numbered first, each generation's files after them (protected); file groups: those of the
    run, then one per generation.  The band keys stay in ``work/bands`` for the next generation."""
    run = [dataclasses.replace(f, index=i) for i, f in enumerate(files)]
    gens, virtual, base = [], [], len(run)
    for gen in state["gens"]:
        gens.append((os.path.join(root, gen["name"]), base))
        virtual.append([InputFile(base + i, os.path.join(docs, n), True) for i, n in enumerate(gen["files"])])
        base += len(gen["files"])
    groups = file_groups(run, cfg.tasks) + virtual  # a generation always names at least one file
    all_files = run + [f for v in virtual for f in v]
    gof = group_of_files(groups)
    protected = np.array([f.protected for f in all_files], bool)
    ident = {**cfg.identity(), "reason": reason, "layout": LAYOUT, "gens": [g["name"] for g in state["gens"]]}
    work = os.path.join(work_root, f"minhash-inc-{fingerprint(run, ident)}")
    if is_done(work, "workflow", "stats"):
        return DedupResult(work, all_files, read_marker(work, "workflow", "stats"), cfg.tasks, groups)
    new_groups = len(groups) - len(gens)
    stats: dict[str, Any] = {
        "work": work,
        "incremental": True,
        "new_files": len(run),
        "generations": len(gens),
    }
    sig = executor.map(
        signature_task, [(g, fs, cfg, work) for g, fs in enumerate(groups[:new_groups])], "dedup: signatures"
    )
    stats["docs"] = sum(s.get("docs", 0) for s in sig)
    buckets = executor.map(
        inc_bucket_task,
        [(p, cfg, work, gens, protected, gof) for p in range(cfg.partitions)],
        "dedup: buckets against the index",
    )
    stats["index_rows_matched"] = sum(b["index_rows"] for b in buckets)
    located = executor.map(
        locate_task,
        [
            (new_groups + j, work, gen_dir, b, state["gens"][j]["files"], docs, cfg)
            for j, (gen_dir, b) in enumerate(gens)
        ],
        "dedup: locate index candidates",
    )
    stats["old_candidates"] = sum(x["candidates"] for x in located)
    t0 = time.perf_counter()
    after_buckets(work, groups, gof, cfg, reason, cfg.threshold, cfg.ngram, cfg.verify, executor, stats, t0)
    mark_done(work, "workflow", "stats", stats)
    return DedupResult(work, all_files, stats, cfg.tasks, groups)


# --- compaction -----------------------------------------------------------------------------------------------


def alive_task(args: tuple[int, str, list[str], str, str, int, str]) -> dict[str, Any]:
    """One generation: its documents still in docs/ (by id), renumbered from ``base``, to ``merged/docs/<j>``."""
    j, gen_dir, names, docs, merged, base, id_column = args
    if is_done(merged, "alive", unit(j)):
        return read_marker(merged, "alive", unit(j))
    t = read_folder(os.path.join(gen_dir, "docs"))
    t = GEN_DOCS_SCHEMA.empty_table() if t is None else t.cast(GEN_DOCS_SCHEMA)
    fidx = split_gid(t.column("gid").to_numpy())[0]
    alive = np.zeros(t.num_rows, bool)
    for fi in np.unique(fidx).tolist():
        path = os.path.join(docs, names[fi])
        if os.path.exists(path):
            sel = np.flatnonzero(fidx == fi)
            have = pq.read_table(path, columns=[id_column]).column(id_column)
            alive[sel] = pc.is_in(t.column("id").take(pa.array(sel)), value_set=have).to_numpy(
                zero_copy_only=False
            )
    t = t.filter(pa.array(alive))
    t = t.set_column(0, "gid", pa.array(_virtual(t.column("gid").to_numpy(), base)))
    write_parquet_atomic(t, _docs_path(merged, j))
    info = {"generation": j, "docs": int(len(alive)), "alive": t.num_rows}
    mark_done(merged, "alive", unit(j), info)
    return info


def merge_keys_task(args: tuple[int, list[tuple[str, int]], str]) -> dict[str, Any]:
    """One partition: the keys of every generation, renumbered, of documents still alive, sorted by key."""
    p, gens, merged = args
    if is_done(merged, "merge", unit(p)):
        return read_marker(merged, "merge", unit(p))
    alive = np.sort(read_folder(os.path.join(merged, "docs"), ["gid"]).column("gid").to_numpy())
    parts = []
    for gen_dir, base in gens:
        t = pq.read_table(_keys_path(gen_dir, p))
        t = t.set_column(2, "gid", pa.array(_virtual(t.column("gid").to_numpy(), base)))
        parts.append(t.filter(pa.array(np.isin(t.column("gid").to_numpy(), alive))))
    t = pa.concat_tables(parts).sort_by("key")
    write_parquet_atomic(t, _keys_path(merged, p))
    info = {"partition": p, "keys": t.num_rows}
    mark_done(merged, "merge", unit(p), info)
    return info


def compact(
    root: str, state: dict[str, Any], docs: str, partitions: int, id_column: str, ex: Executor
) -> None:
    """Merge every generation into one, dropping the documents no longer in docs/ (a task per generation, then
    a task per partition); the state names the merged generation before the old ones are deleted."""
    merged = os.path.join(root, f"gen-{unit(state['next'])}c")  # never the name of a run's own generation
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
        shutil.rmtree(g, ignore_errors=True)


# --- the stage ------------------------------------------------------------------------------------------------


def run_indexed(
    source_dir: str,
    files: list[InputFile],
    cfg: MinHashConfig,
    reason: str,
    executor: Executor,
    remove: Any,
    generations_max: int,
) -> dict[str, Any]:
    """A MinHash stage run that keeps the index: incremental when the index covers all but new docs files, else
    full; ``remove(result)`` applies the removal and returns its stats.  Resumable at every step."""
    root, docs = index_root(source_dir), os.path.join(source_dir, "docs")
    state, ident = load_state(root), index_identity(cfg, reason)
    new = new_files(state, ident, docs, files)
    work_root = os.path.join(source_dir, "_dedup")
    if new is None:
        res = find_near_duplicates([], work_root, cfg, reason, executor, files, keep_bands=True)
        state = {"identity": ident, "gens": [], "covered": {}, "next": state.get("next", 0)}
    elif not new:
        return {"docs": 0, "incremental": True, "new_files": 0}
    else:
        refs = [f for f in files if f.protected]
        res = find_new_duplicates(work_root, cfg, reason, new + refs, state, root, docs, executor)
    stats = {k: v for k, v in res.stats.items() if k != "work"} | remove(res)
    run = [f for f in res.files if f.index < len(res.files) - sum(len(g["files"]) for g in state["gens"])]
    groups = len(res.groups) - len(state["gens"])
    gen_dir = os.path.join(root, f"gen-{unit(state['next'])}")
    gen = build_generation(res.work, run, groups, cfg.partitions, gen_dir, docs, executor)
    covered = {
        **state["covered"],
        **{os.path.relpath(f.path, docs): _rows(f.path) for f in run if not f.protected},
    }
    state = {**state, "gens": state["gens"] + [gen], "covered": covered, "next": state["next"] + 1}
    write_json_atomic(os.path.join(root, "state.json"), state)
    keep = {g["name"] for g in state["gens"]}
    for stale in glob.glob(os.path.join(root, "gen-*")):
        if os.path.basename(stale) not in keep:
            shutil.rmtree(stale, ignore_errors=True)
    if len(state["gens"]) > generations_max:
        compact(root, state, docs, cfg.partitions, cfg.id_column, executor)
    stats["index_generations"] = len(load_state(root)["gens"])
    return stats
