"""The dedup workflows, pass by pass, each pass resumable from markers in its work folder.

MinHash: signatures → buckets (candidate pairs) → verify → clusters → removal.  Exact: hash → buckets → clusters →
removal (same machinery, one "band" whose key is the document hash).  The work folder is named from the inputs and
the settings, so a rerun of the same job resumes and a changed job starts clean.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from dedup.cluster import verify_pairs
from dedup.components import components
from dedup.corpus import (
    DOC_TABLE_SCHEMA,
    InputFile,
    PartitionWriter,
    build_inputs,
    check_columns,
    doc_table,
    file_groups,
    fingerprint,
    gids,
    group_of_files,
    is_done,
    iter_batches,
    mark_done,
    read_marker,
    remove_tree,
    unit,
    write_parquet_atomic,
)
from dedup.minhash import BAND_SCHEMA, MinHashConfig, bucket_task, check_settings, signature_task
from dedup.survivors import choose_survivors, read_duplicates
from dedup.text import simplify_text
from dedup.urls import normalize_url
from pipelines.core.executor import Executor, get_executor

log = logging.getLogger(__name__)
#: on-disk layout of the work folder (part of its name): 3 = file groups x hash partitions, distributed components
LAYOUT = 3


@dataclass
class DedupResult:
    """A finished detection: the work folder holds ``duplicates/<q>.parquet`` and ``removed/<g>/<q>.parquet``."""

    work: str
    files: list[InputFile]
    stats: dict[str, Any]
    tasks: int = 1
    #: the file groups of the passes when they are not ``file_groups(files, tasks)`` (an incremental run)
    explicit_groups: list[list[InputFile]] | None = None

    @property
    def duplicates(self) -> pa.Table:
        """Every cluster member, loaded at once (small corpora, tests); removal reads the partitions instead."""
        return read_duplicates(self.work)

    @property
    def groups(self) -> list[list[InputFile]]:
        return (
            self.explicit_groups if self.explicit_groups is not None else file_groups(self.files, self.tasks)
        )


def _timed(stats: dict[str, Any], name: str, t0: float) -> float:
    now = time.perf_counter()
    stats.setdefault("seconds", {})[name] = round(now - t0, 3)
    return now


def _buckets(work: str, cfg: Any, executor: Executor, stats: dict[str, Any], t0: float, keep: bool) -> float:
    """The bucket pass (candidate pairs); the band keys go unless ``keep`` (the incremental index reads them)."""
    buckets = executor.map(bucket_task, [(p, cfg, work) for p in range(cfg.partitions)], "dedup: buckets")
    stats["bucket_rows"] = sum(b.get("rows", 0) for b in buckets)
    if not keep:  # every bucket unit has its marker: no pass reads the band keys again
        _drop(work, "bands")
    return _timed(stats, "buckets", t0)


def after_buckets(
    work: str,
    groups: list[list[InputFile]],
    gof: np.ndarray,
    cfg: Any,
    reason: str,
    threshold: float,
    ngram: int,
    verify: bool,
    executor: Executor,
    stats: dict[str, Any],
    t0: float,
) -> None:
    """Verification, components and survivors over the candidate pairs in ``work/pairs`` (each resumable)."""
    tok = getattr(cfg, "tokenize", None) or "words"  # the shingling of the MinHash signatures
    args = (threshold, cfg.text_column, ngram, verify, executor, tok)
    stats.update(verify_pairs(work, groups, gof, cfg.partitions, *args))
    _drop(work, "pairs", "verify")  # verified/ keeps every pair's Jaccard
    t0 = _timed(stats, "verify", t0)
    one_task_max = getattr(cfg, "components_one_task_edges", 0)
    stats.update(components(work, cfg.partitions, gof, executor, stats.get("verified_pairs"), one_task_max))
    _drop(work, os.path.join("_done", "cc_seed"), os.path.join("_done", "cc_step"))
    t0 = _timed(stats, "components", t0)
    stats.update(choose_survivors(work, cfg.partitions, gof, reason, cfg.score_order, executor))
    _drop(work, "labels", "members")
    _timed(stats, "clusters", t0)


def _drop(work: str, *folders: str) -> None:
    """Intermediates of a finished pass (its units' markers let a rerun skip it), so the work folder stays small."""
    for folder in folders:
        remove_tree(os.path.join(work, folder))


def find_near_duplicates(
    inputs: list[str],
    work_root: str,
    cfg: MinHashConfig,
    reason: str = "dedup:minhash",
    executor: Executor | None = None,
    files: list[InputFile] | None = None,
    keep_bands: bool = False,
) -> DedupResult:
    """Run the MinHash passes over Parquet ``inputs`` (plus ``cfg.references``) in ``work_root/minhash-<fp>``.

    ``executor`` defaults to the one ``cfg.executor`` names.  ``files`` (the inputs as listed before, e.g. by a
    stage resuming its removal) replaces the listing of ``inputs``.  ``keep_bands`` leaves the band keys in
    ``work/bands`` for the incremental index (:mod:`dedup.incremental`), which drops them once it is written.
    """
    executor = executor or get_executor(cfg.executor, cfg.workers)
    files = files if files is not None else build_inputs(inputs, cfg.references)
    ident = {
        **cfg.identity(),
        "reason": reason,
        "layout": LAYOUT,
        **({"bands_kept": True} if keep_bands else {}),
    }
    work = os.path.join(work_root, f"minhash-{fingerprint(files, ident)}")
    if is_done(work, "workflow", "stats"):  # finished: no input is read again
        return DedupResult(work, files, read_marker(work, "workflow", "stats"), cfg.tasks)
    for f in files:
        check_columns(
            f.path, [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
        )
    groups = file_groups(files, cfg.tasks)
    stats: dict[str, Any] = {
        "work": work,
        "bands": cfg.bands,
        "rows": cfg.rows,
        "threshold": cfg.threshold,
        "verify": cfg.verify,
        "partitions": cfg.partitions,
        "tasks": len(groups),
        "executor": executor.name,
    }
    t0 = time.perf_counter()
    sig = executor.map(
        signature_task, [(g, fs, cfg, work) for g, fs in enumerate(groups)], "dedup: minhash signatures"
    )
    stats["docs"] = sum(s.get("docs", 0) for s in sig)
    t0 = _timed(stats, "signatures", t0)
    t0 = _buckets(work, cfg, executor, stats, t0, keep_bands)
    gof = group_of_files(groups)
    after_buckets(work, groups, gof, cfg, reason, cfg.threshold, cfg.ngram, cfg.verify, executor, stats, t0)
    mark_done(work, "workflow", "stats", stats)
    return DedupResult(work, files, stats, cfg.tasks)


@dataclass
class ExactConfig:
    """Exact document dedup: ``normalized`` (datatrove-style simplified text) or ``md5`` (raw bytes, RedPajama)."""

    mode: str = "normalized"
    #: survivor: reference first, then the best of this column (``score_order``), the longest text, the smallest id
    score_column: str | None = None
    score_order: str = "max"
    text_column: str = "text"
    id_column: str = "id"
    #: the column whose value is hashed (default: the text column); ``id`` finds documents that share an id
    key_column: str | None = None
    #: R hash partitions and M hashing tasks (over groups of input files): ~M x R intermediate files
    partitions: int = 16
    tasks: int = 16
    batch_rows: int = 5000
    executor: str = "auto"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    references: list[str] | None = None
    #: read by the bucket pass (one key per document: a star per bucket is enough)
    all_pairs_max_bucket: int = 2

    def __post_init__(self) -> None:
        if self.mode not in ("normalized", "md5", "url"):
            raise ValueError(f"exact dedup mode must be 'normalized', 'md5' or 'url', got {self.mode!r}")
        check_settings(self.executor, self.score_order, self.partitions, self.tasks)


def _doc_hash(text: str, mode: str) -> int:
    if mode == "url":  # the key of URL-level dedup: captures of one page share it
        return xxhash.xxh3_64_intdigest(normalize_url(text).encode("utf-8", "surrogatepass"))
    if mode == "md5":
        import hashlib

        return int.from_bytes(hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    return xxhash.xxh3_64_intdigest(simplify_text(text).encode("utf-8", "surrogatepass"))


def exact_hash_task(args: tuple[int, list[InputFile], ExactConfig, str]) -> dict[str, Any]:
    """Hash pass for one group of files: ``(band=0, key=hash, gid)`` rows partitioned like MinHash band keys."""
    group, files, cfg, work = args
    name = unit(group)
    if is_done(work, "signatures", name):
        return read_marker(work, "signatures", name)
    key_column = cfg.key_column or cfg.text_column
    cols = list(dict.fromkeys([cfg.id_column, cfg.text_column, key_column]))
    cols += [cfg.score_column] if cfg.score_column else []
    out = PartitionWriter(os.path.join(work, "bands"), name, cfg.partitions, BAND_SCHEMA)
    docs = []
    n = 0
    for f in files:
        for first, t in iter_batches(f.path, cols, cfg.batch_rows):
            values = ["" if x is None else x for x in t.column(key_column).to_pylist()]
            key = np.fromiter((_doc_hash(x, cfg.mode) for x in values), np.uint64, len(values))
            g = gids(f.index, first, t.num_rows)
            rows = pa.table({"band": np.zeros(len(key), np.uint8), "key": key, "gid": g}, schema=BAND_SCHEMA)
            out.add_split(rows, (key % np.uint64(cfg.partitions)).astype(np.int64))
            docs.append(doc_table(t, g, cfg.id_column, cfg.score_column, f.protected, cfg.text_column))
            n += t.num_rows
    out.close()
    facts = pa.concat_tables(docs) if docs else DOC_TABLE_SCHEMA.empty_table()
    write_parquet_atomic(facts, os.path.join(work, "doctable", f"{name}.parquet"))
    info = {"group": group, "docs": n}
    mark_done(work, "signatures", name, info)
    return info


def find_exact_duplicates(
    inputs: list[str],
    work_root: str,
    cfg: ExactConfig,
    reason: str | None = None,
    executor: Executor | None = None,
    files: list[InputFile] | None = None,
) -> DedupResult:
    """Exact duplicates: the MinHash machinery with one "band" whose key is the document hash, no verification."""
    executor = executor or get_executor(cfg.executor, cfg.workers)
    reason = reason or ("dedup:exact_md5" if cfg.mode == "md5" else "dedup:exact")
    files = files if files is not None else build_inputs(inputs, cfg.references)
    ident = {
        "layout": LAYOUT,
        "mode": cfg.mode,
        "score": cfg.score_column,
        "order": cfg.score_order,
        "text": cfg.text_column,
        "key": cfg.key_column,
        "p": cfg.partitions,
        "m": cfg.tasks,
        "reason": reason,
    }
    work = os.path.join(work_root, f"exact-{fingerprint(files, ident)}")
    if is_done(work, "workflow", "stats"):
        return DedupResult(work, files, read_marker(work, "workflow", "stats"), cfg.tasks)
    for f in files:
        check_columns(
            f.path, [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
        )
    groups = file_groups(files, cfg.tasks)
    stats: dict[str, Any] = {"work": work, "mode": cfg.mode, "executor": executor.name}
    t0 = time.perf_counter()
    sig = executor.map(exact_hash_task, [(g, fs, cfg, work) for g, fs in enumerate(groups)], "dedup: hashes")
    stats["docs"] = sum(s.get("docs", 0) for s in sig)
    t0 = _timed(stats, "hashes", t0)
    t0 = _buckets(work, cfg, executor, stats, t0, False)
    after_buckets(work, groups, group_of_files(groups), cfg, reason, 1.0, 1, False, executor, stats, t0)
    mark_done(work, "workflow", "stats", stats)
    return DedupResult(work, files, stats, cfg.tasks)
