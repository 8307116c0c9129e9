"""Line-level dedup (CCNet, Llama-3): drop lines whose normalised form occurs more than ``max_count`` times.

CCNet removes every line seen twice or more (``max_count: 1``); Llama-3 removes lines seen more than 6 times per
bucket of ~30M documents (``max_count: 6``).  Two ways to count:

* two-pass (exact, corpus-wide): :func:`count_lines` hashes every line of Parquet docs into hash-partitioned
  Parquet and sums per partition (no dict of all lines in one process); the :class:`LineDedup` step with
  ``counts_dir`` then loads only the (bucket, hash) keys above ``max_count``.  Buckets are ``xxh64(id) % n``, so the
  step finds a document's bucket from its id alone.
* one-pass (``counts_dir: null``): the step counts lines as documents stream through each worker and drops a line
  once it has been seen more than ``max_count`` times in the current bucket of ``bucket_docs`` documents (the first
  ``max_count`` copies stay).  Cheap, per input, no prior pass; an approximation of the above.

Documents left with no text are rejected (``line_dedup:empty``).
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dedup.corpus import build_inputs, is_done, iter_batches, mark_done, pmap, write_parquet_atomic
from dedup.text import normalize_line
from pipelines.core.steps import Step, StepResult, set_column, texts

_BUCKET_MULT = np.uint64(0x9E3779B97F4A7C15)


def line_hash(line: str) -> int | None:
    norm = normalize_line(line)
    return xxhash.xxh3_64_intdigest(norm.encode("utf-8", "surrogatepass")) if norm else None


def bucket_of(doc_id: str, n_buckets: int) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass")) % max(1, n_buckets)


def _combined(bucket: np.ndarray, h: np.ndarray) -> np.ndarray:
    return h.astype(np.uint64) ^ (bucket.astype(np.uint64) * _BUCKET_MULT)


def _count_file(args: tuple[Any, str, int, int]) -> dict[str, Any]:
    f, work, n_buckets, partitions = args
    if is_done(work, "line_hashes", f.key):
        return {}
    hs, bs = [], []
    for _, t in iter_batches(f.path, ["id", "text"], 2000):
        for doc_id, text in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True):
            b = bucket_of(doc_id or "", n_buckets)
            for line in (text or "").split("\n"):
                h = line_hash(line)
                if h is not None:
                    hs.append(h)
                    bs.append(b)
    h = np.array(hs, dtype=np.uint64)
    b = np.array(bs, dtype=np.uint32)
    t = (
        pa.table({"bucket": b, "hash": h, "n": np.ones(len(h), np.int64)})
        .group_by(["bucket", "hash"])
        .aggregate([("n", "sum")])
    )
    part = (t.column("hash").to_numpy() % np.uint64(partitions)).astype(np.int64)
    for p in range(partitions):
        write_parquet_atomic(
            t.filter(pa.array(part == p)).rename_columns(["bucket", "hash", "count"]),
            os.path.join(work, "hashes", f"{p:04d}", f"{f.key}.parquet"),
        )
    mark_done(work, "line_hashes", f.key, {"lines": len(h)})
    return {"lines": len(h)}


def _sum_partition(args: tuple[int, str]) -> int:
    p, work = args
    out = os.path.join(work, f"counts-{p:04d}.parquet")
    if not is_done(work, "line_counts", f"{p:04d}"):
        files = sorted(glob.glob(os.path.join(work, "hashes", f"{p:04d}", "*.parquet")))
        t = (
            pa.concat_tables([pq.read_table(x) for x in files])
            .group_by(["bucket", "hash"])
            .aggregate([("count", "sum")])
            .rename_columns(["bucket", "hash", "count"])
        )
        write_parquet_atomic(t, out)
        mark_done(work, "line_counts", f"{p:04d}", {"distinct": t.num_rows})
    return pq.ParquetFile(out).metadata.num_rows


def count_lines(
    inputs: list[str],
    counts_dir: str,
    bucket_docs: int = 0,
    partitions: int = 16,
    executor: str = "local",
    workers: int = 2,
) -> dict[str, Any]:
    """Pass 1 of two-pass line dedup over Parquet docs (id, text); writes ``counts-<p>.parquet`` + ``meta.json``.

    ``bucket_docs`` = 0: one bucket (CCNet: counts over the whole run); else about that many docs per bucket.
    """
    files = build_inputs(inputs)
    total = sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
    n_buckets = 1 if bucket_docs <= 0 else max(1, math.ceil(total / bucket_docs))
    pmap(_count_file, [(f, counts_dir, n_buckets, partitions) for f in files], workers, executor)
    distinct = sum(pmap(_sum_partition, [(p, counts_dir) for p in range(partitions)], workers, executor))
    meta = {"docs": total, "buckets": n_buckets, "partitions": partitions, "distinct_lines": distinct}
    with open(os.path.join(counts_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    return meta


def frequent_keys(counts_dir: str, max_count: int) -> tuple[np.ndarray, int]:
    """Sorted combined (bucket, hash) keys of lines seen more than ``max_count`` times, and the bucket count."""
    meta_path = os.path.join(counts_dir, "meta.json")
    if not os.path.exists(meta_path):
        raise FileNotFoundError(
            f"no line counts in {counts_dir}: run `winnow dedup lines --input <docs> "
            f"--counts {counts_dir}` first, or set counts_dir: null for one-pass counting"
        )
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    keys = []
    for p in sorted(glob.glob(os.path.join(counts_dir, "counts-*.parquet"))):
        t = pq.read_table(p, filters=[("count", ">", max_count)])
        keys.append(_combined(t.column("bucket").to_numpy(), t.column("hash").to_numpy()))
    return (np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)), int(meta["buckets"])


@dataclass
class LineDedup(Step):
    """Transform: remove lines repeated more than ``max_count`` times (see the module docstring for the modes)."""

    kind: ClassVar[str] = "transform"
    reads: ClassVar[tuple[str, ...]] = ("id", "text")

    max_count: int = 6
    counts_dir: str | None = None
    bucket_docs: int = 30_000_000

    def setup(self) -> None:
        if self.counts_dir:
            self._frequent, self._buckets = frequent_keys(self.counts_dir, self.max_count)
        self._seen: Counter = Counter()
        self._docs = 0

    def start_input(self, path: str) -> None:
        # one-pass mode counts within one input: counts carried over from whatever inputs this worker happened to
        # process before would make an input's output depend on scheduling (Ray vs local, resumed runs)
        self._seen = Counter()
        self._docs = 0

    def _drop_mask(self, doc_id: str, hashes: list[int | None]) -> list[bool]:
        if self.counts_dir:
            b = bucket_of(doc_id, self._buckets)
            hv = np.array([h or 0 for h in hashes], dtype=np.uint64)
            keys = _combined(np.full(len(hv), b, np.uint32), hv)
            found = np.isin(keys, self._frequent) if len(self._frequent) else np.zeros(len(hv), bool)
            return [bool(f) and h is not None for f, h in zip(found.tolist(), hashes, strict=True)]
        if self.bucket_docs and self._docs >= self.bucket_docs:
            self._seen.clear()
            self._docs = 0
        self._docs += 1
        drop = []
        for h in hashes:
            if h is None:
                drop.append(False)
                continue
            self._seen[h] += 1
            drop.append(self._seen[h] > self.max_count)
        return drop

    def process(self, batch: pa.Table) -> StepResult:
        ids = batch.column("id").to_pylist()
        out, reasons, changed = [], [], 0
        for doc_id, text in zip(ids, texts(batch), strict=True):
            lines = text.split("\n")
            drop = self._drop_mask(doc_id or "", [line_hash(x) for x in lines])
            if any(drop):
                changed += 1
                text = "\n".join(x for x, d in zip(lines, drop, strict=True) if not d).strip()
            out.append(text)
            reasons.append("line_dedup:empty" if not text.strip() else None)
        table = set_column(batch, "text", pa.array(out, batch.schema.field("text").type))
        return StepResult(table, reasons, changed)
