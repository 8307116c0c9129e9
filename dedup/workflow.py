"""The dedup workflows, pass by pass, each pass resumable from markers in its work folder.

MinHash: signatures → buckets (candidate pairs) → verify → clusters → removal.  Exact: hash → buckets → clusters →
removal (same machinery, one "band" whose key is the document hash).  The work folder is named from the inputs and
the settings, so a rerun of the same job resumes and a changed job starts clean.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dedup.cluster import build_clusters, verify_pairs
from dedup.corpus import (
    InputFile,
    build_inputs,
    check_columns,
    doc_table,
    fingerprint,
    gids,
    is_done,
    iter_batches,
    mark_done,
    pmap,
    write_parquet_atomic,
)
from dedup.minhash import MinHashConfig, bucket_task, partitions_for, signature_task
from dedup.text import simplify_text

log = logging.getLogger(__name__)
#: on-disk layout of the work folder (part of its name): 2 = verify partitions, doc tables with text length
LAYOUT = 2


@dataclass
class DedupResult:
    work: str
    files: list[InputFile]
    duplicates: pa.Table
    stats: dict[str, Any]


def _timed(stats: dict[str, Any], name: str, t0: float) -> float:
    now = time.perf_counter()
    stats.setdefault("seconds", {})[name] = round(now - t0, 3)
    return now


def find_near_duplicates(
    inputs: list[str], work_root: str, cfg: MinHashConfig, reason: str = "dedup:minhash"
) -> DedupResult:
    """Run the MinHash passes over Parquet ``inputs`` (plus ``cfg.references``) in ``work_root/minhash-<fp>``."""
    files = build_inputs(inputs, cfg.references)
    for f in files:
        check_columns(
            f.path, [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
        )
    docs = sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
    cfg = replace(cfg, partitions=partitions_for(docs, cfg.bands, cfg.partitions, cfg.partition_rows))
    ident = {**cfg.identity(), "reason": reason, "layout": LAYOUT}
    work = os.path.join(work_root, f"minhash-{fingerprint(files, ident)}")
    stats: dict[str, Any] = {
        "work": work,
        "bands": cfg.bands,
        "rows": cfg.rows,
        "threshold": cfg.threshold,
        "verify": cfg.verify,
        "partitions": cfg.partitions,
    }
    t0 = time.perf_counter()
    sig = pmap(signature_task, [(f, cfg, work) for f in files], cfg.workers, cfg.executor)
    stats["docs"] = sum(s.get("docs", 0) for s in sig if not s.get("skipped"))
    t0 = _timed(stats, "signatures", t0)
    buckets = pmap(bucket_task, [(p, cfg, work) for p in range(cfg.partitions)], cfg.workers, cfg.executor)
    stats["bucket_rows"] = sum(b.get("rows", 0) for b in buckets)
    t0 = _timed(stats, "buckets", t0)
    stats.update(
        verify_pairs(
            work,
            files,
            cfg.threshold,
            cfg.text_column,
            cfg.ngram,
            cfg.verify,
            cfg.verify_chars,
            cfg.workers,
            cfg.executor,
        )
    )
    t0 = _timed(stats, "verify", t0)
    stats.update(build_clusters(work, files, reason))
    _timed(stats, "clusters", t0)
    return DedupResult(work, files, pq.read_table(os.path.join(work, "duplicates.parquet")), stats)


@dataclass
class ExactConfig:
    """Exact document dedup: ``normalized`` (datatrove-style simplified text) or ``md5`` (raw bytes, RedPajama)."""

    mode: str = "normalized"
    score_column: str | None = None
    text_column: str = "text"
    id_column: str = "id"
    #: hash partitions (at least; more when the corpus has over ``partition_rows`` documents per partition)
    partitions: int = 16
    partition_rows: int = 1_000_000
    batch_rows: int = 5000
    executor: str = "local"
    workers: int = 2
    references: list[str] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("normalized", "md5"):
            raise ValueError(f"exact dedup mode must be 'normalized' or 'md5', got {self.mode!r}")


def _doc_hash(text: str, mode: str) -> int:
    if mode == "md5":
        import hashlib

        return int.from_bytes(hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    return xxhash.xxh3_64_intdigest(simplify_text(text).encode("utf-8", "surrogatepass"))


def exact_hash_task(args: tuple[InputFile, ExactConfig, str]) -> dict[str, Any]:
    """Hash pass for one file: ``(band=0, key=hash, gid)`` rows partitioned like MinHash band keys."""
    f, cfg, work = args
    if is_done(work, "signatures", f.key):
        return {"file": f.key, "skipped": True}
    cols = [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
    keys, gl, docs = [], [], []
    for first, t in iter_batches(f.path, cols, cfg.batch_rows):
        texts = ["" if x is None else x for x in t.column(cfg.text_column).to_pylist()]
        keys.append(np.fromiter((_doc_hash(x, cfg.mode) for x in texts), np.uint64, len(texts)))
        g = gids(f.index, first, t.num_rows)
        gl.append(g)
        docs.append(doc_table(t, g, cfg.id_column, cfg.score_column, f.protected, cfg.text_column))
    key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    gid = np.concatenate(gl) if gl else np.zeros(0, np.uint64)
    part = (key % np.uint64(cfg.partitions)).astype(np.int64)
    for i in range(cfg.partitions):
        m = part == i
        write_parquet_atomic(
            pa.table({"band": np.zeros(int(m.sum()), np.uint8), "key": key[m], "gid": gid[m]}),
            os.path.join(work, "bands", f"{i:04d}", f"{f.key}.parquet"),
        )
    if docs:
        write_parquet_atomic(pa.concat_tables(docs), os.path.join(work, "doctable", f"{f.key}.parquet"))
    info = {"file": f.key, "docs": int(len(gid))}
    mark_done(work, "signatures", f.key, info)
    return info


def find_exact_duplicates(
    inputs: list[str], work_root: str, cfg: ExactConfig, reason: str | None = None
) -> DedupResult:
    reason = reason or ("dedup:exact_md5" if cfg.mode == "md5" else "dedup:exact")
    files = build_inputs(inputs, cfg.references)
    for f in files:
        check_columns(
            f.path, [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
        )
    docs = sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
    cfg = replace(cfg, partitions=partitions_for(docs, 1, cfg.partitions, cfg.partition_rows))
    ident = {
        "layout": LAYOUT,
        "mode": cfg.mode,
        "score": cfg.score_column,
        "text": cfg.text_column,
        "p": cfg.partitions,
        "reason": reason,
    }
    work = os.path.join(work_root, f"exact-{fingerprint(files, ident)}")
    stats: dict[str, Any] = {"work": work, "mode": cfg.mode}
    t0 = time.perf_counter()
    pmap(exact_hash_task, [(f, cfg, work) for f in files], cfg.workers, cfg.executor)
    t0 = _timed(stats, "hashes", t0)
    # identical hashes: star edges inside each bucket, no verification needed
    mh = replace(MinHashConfig(), partitions=cfg.partitions, all_pairs_max_bucket=2, verify=False)
    pmap(bucket_task, [(p, mh, work) for p in range(cfg.partitions)], cfg.workers, cfg.executor)
    stats.update(verify_pairs(work, files, 1.0, cfg.text_column, 1, verify=False))
    stats.update(build_clusters(work, files, reason))
    _timed(stats, "clusters", t0)
    return DedupResult(work, files, pq.read_table(os.path.join(work, "duplicates.parquet")), stats)
