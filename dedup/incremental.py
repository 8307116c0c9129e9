"""Incremental MinHash dedup for cron: new docs files are deduplicated against an index of what was kept before.

The rule: documents that survived an earlier run stay; they take part as protected documents (like references):
a new document near one of them goes, they never go.  So "A, then A+B" removes from B exactly what one MinHash run
over B with A's survivors as references removes.  A B document similar only to an A document that A's own dedup
removed is judged against A's survivors only (the removed one is not in the index).

The index (``<source>/_dedup/minhash-index/``): one generation per run, ``gen-<k>/keys/<p>.parquet`` and
``rows/<p>.parquet`` (key; band, gid: the band keys of that run's survivors, R hash partitions by key like the band
pass, sorted by key) and
``gen-<k>/docs/<g>.parquet`` (gid, id: which document a gid was, by file group).  ``state.json`` holds the settings
the index was built with, the generations (each with the docs file names its gids number) and ``covered``: every
docs file the index covers with its row count after that run.

An incremental run (same settings, every covered file still has at most its recorded rows, i.e. later stages only
removed or rewrote rows) works on the new files only: their signatures; a bucket task per partition looks their
keys up in the index partitions, reading only the row groups whose key range holds a new key
(:func:`dedup.minhash_index.lookup`: the cost grows with the new keys, not the index; pairs between two old
documents are dropped); a locate task per generation looks up its candidate documents by id in the current docs
files and reads only those rows (``located/<g>.parquet``); verification, components, survivors and removal as in
a full run, old documents protected; then the new survivors' keys become the next generation.  Compaction
(:func:`dedup.minhash_index.merge_from`) merges the newest generations as a binary counter, so there are about
log2(index / increment) of them (at most ``index_generations_max``): a task per generation keeps the documents
still in docs/ and a task per partition merges the keys into one generation.  Anything else (no index, changed
settings, a covered file that grew) is a full run, which rebuilds the index from its own band keys.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup import corpus
from dedup.corpus import Folder, InputFile, is_done, mark_done, read_marker, unit
from dedup.minhash import MinHashConfig, _bucket_pairs, signature_task, write_pairs
from dedup.minhash_index import (  # noqa: F401 - index_root, load_state re-exported
    GEN_DOCS_SCHEMA,
    KEYS_SCHEMA,
    build_generation,
    compact,
    docs_path,
    index_root,
    load_state,
    lookup,
    merge_from,
    virtual,
)
from dedup.workflow import LAYOUT, DedupResult, after_buckets, find_near_duplicates
from pipelines.core.executor import Executor
from pipelines.core.layout import write_json_atomic

INDEX_LAYOUT = 2  # 2: key files and rows files in row groups (minhash_index.write_keys)
LOCATED_SCHEMA = pa.schema([("gid", pa.uint64()), ("text", pa.large_string())])
_U64 = np.uint64


def index_identity(cfg: MinHashConfig, reason: str) -> str:
    """The settings an index is only valid for (a change means a full run)."""
    return corpus.fingerprint(
        [], {**cfg.identity(), "reason": reason, "layout": LAYOUT, "index": INDEX_LAYOUT}
    )


def _rows(path: str) -> int:
    return corpus.parquet_file(path).metadata.num_rows


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
    new = corpus.read_folder(os.path.join(work, "bands", name))
    out = corpus.PartitionWriter(os.path.join(work, "pairs"), name, cfg.partitions, corpus.PAIR_SCHEMA)
    need = corpus.PartitionWriter(
        os.path.join(work, "oldneed"), name, int(gof.max()) + 1, GEN_DOCS_SCHEMA.remove(1)
    )
    info = {"partition": p, "rows": 0, "index_rows": 0, "pairs": 0}
    seen: Counter = Counter()
    if new is not None and new.num_rows:
        wanted = np.unique(new.column("key").to_numpy())
        parts = [new.cast(KEYS_SCHEMA)]
        for gen_dir, base in gens:  # only the row groups whose key range holds a new key are read
            old = lookup(gen_dir, p, wanted, seen)
            parts.append(old.set_column(2, "gid", pa.array(virtual(old.column("gid").to_numpy(), base))))
            info["index_rows"] += old.num_rows
        t = pa.concat_tables(parts)
        info["rows"] = t.num_rows
        a, b = _bucket_pairs(t, cfg.all_pairs_max_bucket)
        old_a, old_b = protected[corpus.split_gid(a)[0]], protected[corpus.split_gid(b)[0]]
        keep = ~(old_a & old_b)  # two old/reference docs: both stay
        a, b = a[keep], b[keep]
        info["pairs"] = write_pairs(out, a, b, cfg.partitions)
        olds = np.unique(np.concatenate([a, b]))
        olds = olds[corpus.split_gid(olds)[0] >= first_old]
        need.add_split(
            pa.table({"gid": olds}, schema=GEN_DOCS_SCHEMA.remove(1)), gof[corpus.split_gid(olds)[0]]
        )
    out.close()
    need.close()
    info.update({f"index_{k}": v for k, v in seen.items()})
    mark_done(work, "buckets", name, info)
    return info


def locate_task(args: tuple[int, str, str, int, list[str], str, MinHashConfig]) -> dict[str, Any]:
    """One generation (one file group): its candidate documents looked up by id in the current docs files, only
    their rows read; ``doctable/<g>`` (facts, protected) and ``located/<g>`` (texts).  A document no longer in
    docs/ (removed by a later stage) keeps its id, with an empty text: no verified pair reaches it."""
    g, work, gen_dir, base, names, docs, cfg = args
    if is_done(work, "locate", unit(g)):
        return read_marker(work, "locate", unit(g))
    need = corpus.read_folder(os.path.join(work, "oldneed", unit(g)))
    gids = np.unique(need.column("gid").to_numpy()) if need is not None else np.zeros(0, _U64)
    fidx, row = corpus.split_gid(gids)
    fidx = fidx - base
    old_gid = (fidx.astype(_U64) << _U64(corpus.ROW_BITS)) | row.astype(_U64)
    known = corpus.read_folder(os.path.join(gen_dir, "docs")) or GEN_DOCS_SCHEMA.empty_table()
    known = known.filter(pc.is_in(known.column("gid"), value_set=pa.array(old_gid, pa.uint64())))
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
        if corpus.exists(path):
            have = corpus.read_table(path, columns=[cfg.id_column]).column(cfg.id_column)
            at = pc.index_in(ids.take(pa.array(sel)), value_set=have)
            ok = pc.is_valid(at).to_numpy(zero_copy_only=False)
            rows = at.filter(pa.array(ok)).to_numpy().astype(np.int64)
            if ok.any():  # read_rows returns the rows in file order: put them back in gid order
                got = corpus.read_rows(path, rows, cols)
                got = got.take(pa.array(np.argsort(np.argsort(rows, kind="stable"), kind="stable")))
                t = pa.concat_tables([got, t.filter(pa.array(~ok)).cast(got.schema)])
                sel = np.r_[sel[ok], sel[~ok]]
                found += int(ok.sum())
        parts.append(corpus.doc_table(t, gids[sel], cfg.id_column, cfg.score_column, True, cfg.text_column))
        texts = pc.fill_null(t.column(cfg.text_column).cast(pa.large_string()), "")
        parts[-1] = (parts[-1], pa.table({"gid": pa.array(gids[sel], pa.uint64()), "text": texts}))
    facts = pa.concat_tables([f for f, _ in parts]) if parts else corpus.DOC_TABLE_SCHEMA.empty_table()
    corpus.write_parquet_atomic(facts.sort_by("gid"), os.path.join(work, "doctable", f"{unit(g)}.parquet"))
    texts = pa.concat_tables([x for _, x in parts]) if parts else LOCATED_SCHEMA.empty_table()
    corpus.write_parquet_atomic(texts.sort_by("gid"), _located(work, g))
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
    groups = corpus.file_groups(run, cfg.tasks) + virtual  # a generation always names at least one file
    all_files = run + [f for v in virtual for f in v]
    gof = corpus.group_of_files(groups)
    protected = np.array([f.protected for f in all_files], bool)
    ident = {**cfg.identity(), "reason": reason, "layout": LAYOUT, "gens": [g["name"] for g in state["gens"]]}
    work = os.path.join(work_root, f"minhash-inc-{corpus.fingerprint(run, ident)}")
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
    for k in ("row_groups", "row_groups_read", "bytes", "bytes_read"):  # the lookups: index vs what they read
        stats[f"index_{k}"] = sum(b.get(f"index_{k}", 0) for b in buckets)
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
    for stale in Folder(root).folders():
        if stale.startswith("gen-") and stale not in keep:
            corpus.remove_tree(os.path.join(root, stale))
    start = merge_from([g["keys"] for g in state["gens"]], generations_max)
    if start < len(state["gens"]):
        compact(root, state, docs, cfg.partitions, cfg.id_column, executor, start)
    stats["index_generations"] = len(load_state(root)["gens"])
    return stats
