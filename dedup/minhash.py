"""MinHash signatures, LSH band keys and candidate pairs: the first two passes of the near-duplicate workflow.

Pass 1 (one task per group of input files, M groups): signatures of every document, vectorised over all shingles of
a batch with the multiply-shift family ``h_i(x) = (a_i * x + b_i) mod 2^64 >> 32``; each band's ``rows`` values are
mixed into one 64-bit key, and ``(band, key, gid)`` rows go to ``bands/<p>/<group>.parquet`` with
``p = key % R``, streamed (:class:`~dedup.corpus.PartitionWriter`), and the group's per-document facts to
``doctable/<group>.parquet``.  M and R are settings (``tasks``, ``partitions``), so the pass leaves M x R files
whatever the corpus size.
Pass 2 (one task per partition, R tasks): sort the partition's rows by ``(band, key)``; every bucket with two or
more documents yields candidate pairs, written to ``pairs/<q>/<p>.parquet`` with ``q`` a hash of the pair, so each
pair found in several bands (several partitions) meets its copies in one verify partition.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dedup.corpus import (
    DOC_TABLE_SCHEMA,
    PAIR_SCHEMA,
    InputFile,
    PartitionWriter,
    doc_table,
    gids,
    is_done,
    iter_batches,
    mark_done,
    parquet_file,
    part_of,
    read_folder,
    read_marker,
    unit,
    write_parquet_atomic,
)
from dedup.text import _POS_MULT, check_tokenize, mix64, partition_salts, shingle_hashes
from pipelines.core.executor import NAMES

_U64 = np.uint64


@dataclass
class MinHashConfig:
    """Settings of the MinHash workflow (the ``dedup.minhash`` section of a config)."""

    ngram: int = 5
    #: bands x rows; left at 0, both are chosen from ``threshold`` (datasketch's optimiser).  18 x 6 = 108
    #: permutations: a pair at J=0.85 escapes every band with probability 0.0002 (datatrove's 14 x 8: 0.012);
    #: the extra candidates below the threshold are removed by the exact-Jaccard check
    bands: int = 18
    rows: int = 6
    #: Jaccard similarity from which two documents are duplicates (verification cut, and band choice if unset)
    threshold: float = 0.8
    #: check each candidate pair by exact Jaccard of its shingle sets before clustering
    verify: bool = True
    #: survivor of a cluster: a reference document, then the best value of this column (if set; ``score_order``
    #: "max" or "min", e.g. "min" for perplexity), then the longest text, then the smallest id
    score_column: str | None = None
    score_order: str = "max"
    seed: int = 1
    #: R: hash partitions of every shuffle (bands, pairs, verification, components); with ``tasks`` (M, the
    #: signature tasks over groups of input files) they fix the number of intermediate files (~M x R).  A
    #: partition's share of the corpus is what one task holds: raise R with the corpus, or from the cluster size
    partitions: int = 16
    tasks: int = 16
    batch_rows: int = 2000
    #: verified pairs up to which one task finds the connected components (same labels as the distributed
    #: large/small-star rounds, without their R x R small files per round; ~100 bytes per pair in that task)
    components_one_task_edges: int = 2_000_000
    #: buckets up to this size emit all their pairs; larger ones a star around their smallest member
    all_pairs_max_bucket: int = 8
    text_column: str = "text"
    id_column: str = "id"
    #: who runs the passes (pipelines.core.executor): "local" (this process), "process" (a pool of `workers`),
    #: "ray", or "auto": Ray when RAY_ADDRESS names a cluster, else a process pool
    executor: str = "auto"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: documents of these Parquet dirs/globs are matched against but never removed (cross-source dedup)
    references: list[str] = field(default_factory=list)
    #: a column (``lang``) whose values split the corpus: documents are compared only within one value (a file
    #: without the column, e.g. a reference folder, counts as null: its own partition); None: one corpus
    partition_by: str | None = None
    #: shingle tokens: "words" (whitespace words) or "auto" (characters of unspaced scripts, Chinese, Japanese,
    #: Thai..., whitespace words elsewhere: dedup.text); None: "auto" when ``partition_by`` is set, else "words"
    tokenize: str | None = None

    def __post_init__(self) -> None:
        if self.bands <= 0 or self.rows <= 0:
            self.bands, self.rows = choose_bands(self.threshold, 112, self.verify)
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"minhash threshold must be in (0, 1], got {self.threshold}")
        check_settings(self.executor, self.score_order, self.partitions, self.tasks)
        if self.partition_by == "auto":
            raise ValueError(
                "minhash partition_by: 'auto' is resolved by the source recipe; give a column or null"
            )
        if self.tokenize is None:
            self.tokenize = "auto" if self.partition_by else "words"
        check_tokenize(self.tokenize)

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def identity(self) -> dict[str, Any]:
        """The settings that change results (the work folder is named from them)."""
        return (
            {
                k: getattr(self, k)
                for k in (
                    "ngram",
                    "bands",
                    "rows",
                    "threshold",
                    "verify",
                    "score_column",
                    "score_order",
                    "seed",
                    "partitions",
                    "tasks",
                    "all_pairs_max_bucket",
                    "text_column",
                    "id_column",
                )
            }
            | ({"partition_by": self.partition_by} if self.partition_by else {})
            # "words" is the shingling of work folders made before the setting existed
            | ({"tokenize": self.tokenize} if self.tokenize != "words" else {})
        )


def check_settings(executor: str, score_order: str, partitions: int, tasks: int) -> None:
    """Fail early, naming the setting, on values no pass could use."""
    if executor not in NAMES:
        raise ValueError(f"dedup executor must be one of {', '.join(NAMES)}, got {executor!r}")
    if score_order not in ("max", "min"):
        raise ValueError(f"score_order must be 'max' or 'min', got {score_order!r}")
    if partitions < 1 or tasks < 1:
        raise ValueError(f"partitions and tasks must be >= 1, got {partitions} and {tasks}")


def choose_bands(threshold: float, num_perm: int, verify: bool = True) -> tuple[int, int]:
    """Bands x rows minimising weighted false positives + negatives around ``threshold`` (datasketch's optimiser).

    With verification, false positives only cost a Jaccard check, so misses weigh 4x more.
    """
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, *((0.2, 0.8) if verify else (0.5, 0.5)))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * _U64(2) + _U64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def signatures(
    texts: Sequence[str] | pa.Array | pa.ChunkedArray, cfg: MinHashConfig, chunk: int = 32_768
) -> tuple[np.ndarray, np.ndarray]:
    """``(sig uint32[len(texts), num_perm], has_shingles bool[len(texts)])`` for one batch of texts.

    One permutation at a time over a cache-sized chunk of shingles: ``(a * h + b) >> 32`` in place in one buffer,
    minima per document on uint64 (the values fit in 32 bits, so the minimum is the same).  Contiguous 1-D
    passes without temporaries or casts: 5x faster than the (shingles x permutations) expression, same values."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    h, offsets = shingle_hashes(texts, cfg.ngram, tokenize=cfg.tokenize or "words")
    n = len(texts)
    sig = np.full((cfg.num_perm, n), np.iinfo(np.uint32).max, dtype=np.uint32)
    counts = np.diff(offsets)
    doc_of = np.repeat(np.arange(n), counts)
    buf = np.empty(min(chunk, len(h)), dtype=_U64)
    shift = _U64(32)
    for lo in range(0, len(h), chunk):
        hi = min(lo + chunk, len(h))
        d, hs, vals = doc_of[lo:hi], h[lo:hi], buf[: hi - lo]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        rows = d[starts]
        for i in range(len(a)):
            np.multiply(hs, a[i], out=vals)
            vals += b[i]
            vals >>= shift
            sig[i, rows] = np.minimum(sig[i, rows], np.minimum.reduceat(vals, starts))
    return np.ascontiguousarray(sig.T), counts > 0


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64[n, bands]: each band's ``rows`` values mixed into one key (band number included)."""
    s = sig.astype(_U64).reshape(len(sig), bands, rows)
    acc = np.zeros((len(sig), bands), dtype=_U64)
    for r in range(rows):
        acc = acc + s[:, :, r] * _POS_MULT[r % len(_POS_MULT)]
        if r % len(_POS_MULT) == len(_POS_MULT) - 1:
            acc = mix64(acc)  # rows > 16: mix before the multipliers repeat
    acc = acc + np.arange(bands, dtype=_U64)[None, :] * _U64(0x9E3779B97F4A7C15)
    return mix64(acc)


BAND_SCHEMA = pa.schema([("band", pa.uint8()), ("key", pa.uint64()), ("gid", pa.uint64())])


def signature_task(args: tuple[int, list[InputFile], MinHashConfig, str]) -> dict[str, Any]:
    """Pass 1 for one group of input files: band keys to ``bands/<p>/<group>.parquet``, doc facts; resumable."""
    group, files, cfg, work = args
    name = unit(group)
    if is_done(work, "signatures", name):
        return read_marker(work, "signatures", name)
    cols = [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
    out = PartitionWriter(os.path.join(work, "bands"), name, cfg.partitions, BAND_SCHEMA)
    doc_tables = []
    docs = empty = 0
    for f in files:
        part_col = cfg.partition_by if cfg.partition_by in pq_columns(f.path) else None
        for first, t in iter_batches(f.path, cols + ([part_col] if part_col else []), cfg.batch_rows):
            sig, ok = signatures(t.column(cfg.text_column), cfg)
            g = gids(f.index, first, t.num_rows)
            keys = band_keys(sig[ok], cfg.bands, cfg.rows)
            if cfg.partition_by:  # documents of different partitions (languages) never share a bucket
                salts = partition_salts(t.column(part_col).to_pylist() if part_col else [None] * t.num_rows)
                keys = mix64(keys ^ salts[ok][:, None])
            flat = keys.reshape(-1)
            rows = pa.table(
                {
                    "band": np.tile(np.arange(cfg.bands, dtype=np.uint8), int(ok.sum())),
                    "key": flat,
                    "gid": np.repeat(g[ok], cfg.bands),
                },
                schema=BAND_SCHEMA,
            )
            out.add_split(rows, (flat % _U64(cfg.partitions)).astype(np.int64))
            doc_tables.append(doc_table(t, g, cfg.id_column, cfg.score_column, f.protected, cfg.text_column))
            docs += t.num_rows
            empty += int((~ok).sum())
    out.close()
    facts = pa.concat_tables(doc_tables) if doc_tables else DOC_TABLE_SCHEMA.empty_table()
    write_parquet_atomic(facts, os.path.join(work, "doctable", f"{name}.parquet"))
    info = {"group": group, "files": len(files), "docs": docs, "no_shingles": empty}
    mark_done(work, "signatures", name, info)
    return info


def pq_columns(path: str) -> list[str]:
    """The column names of a Parquet file (from its footer)."""
    return parquet_file(path).schema_arrow.names


def _bucket_pairs(t: pa.Table, all_pairs_max_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(a, b)`` of one partition's band rows: a star around each bucket's smallest gid, and
    every pair of small buckets (so one false member cannot hide a true pair)."""
    band = t.column("band").to_numpy()
    key = t.column("key").to_numpy()
    gid = t.column("gid").to_numpy()
    order = np.lexsort((gid, key, band))
    band, key, gid = band[order], key[order], gid[order]
    new = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(key)])
    multi = sizes > 1
    grp = np.repeat(np.arange(len(starts)), sizes)
    root = gid[starts][grp]
    member = ~new & multi[grp]
    a_out, b_out = [root[member]], [gid[member]]
    small = multi & (sizes <= all_pairs_max_bucket) & (sizes > 2)
    for s, z in zip(starts[small].tolist(), sizes[small].tolist(), strict=True):
        g = gid[s + 1 : s + z]
        i, j = np.triu_indices(len(g), 1)
        a_out.append(g[i])
        b_out.append(g[j])
    a, b = np.concatenate(a_out), np.concatenate(b_out)
    return np.minimum(a, b), np.maximum(a, b)


def pair_key(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One uint64 per pair, to partition pairs (the same pair always lands in the same partition)."""
    return mix64(a.astype(_U64)) ^ b.astype(_U64)


def write_pairs(out: PartitionWriter, a: np.ndarray, b: np.ndarray, partitions: int) -> int:
    """Distinct pairs ``a < b`` to their pair partitions; returns how many."""
    if not len(a):
        return 0
    ab = np.unique(np.stack([a, b], axis=1), axis=0)
    table = pa.table({"a": ab[:, 0], "b": ab[:, 1]}, schema=PAIR_SCHEMA)
    out.add_split(table, part_of(pair_key(ab[:, 0], ab[:, 1]), partitions))
    return len(ab)


def bucket_task(args: tuple[int, MinHashConfig, str]) -> dict[str, Any]:
    """Pass 2 for one partition: candidate pairs ``a < b`` to ``pairs/<q>/<p>.parquet`` (q: hash of the pair)."""
    part, cfg, work = args
    name = unit(part)
    if is_done(work, "buckets", name):
        return read_marker(work, "buckets", name)
    t = read_folder(os.path.join(work, "bands", name))
    out = PartitionWriter(os.path.join(work, "pairs"), name, cfg.partitions, PAIR_SCHEMA)
    pairs = rows = 0
    if t is not None and t.num_rows:
        rows = t.num_rows
        a, b = _bucket_pairs(t, cfg.all_pairs_max_bucket)
        del t
        pairs = write_pairs(out, a, b, cfg.partitions)
    out.close()
    info = {"partition": part, "rows": rows, "pairs": pairs}
    mark_done(work, "buckets", name, info)
    return info
