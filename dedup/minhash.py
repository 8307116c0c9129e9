"""MinHash signatures, LSH band keys and candidate pairs: the first two passes of the near-duplicate workflow.

Pass 1 (per input file, parallel): signatures of every document, vectorised over all shingles of a batch with the
multiply-shift family ``h_i(x) = (a_i * x + b_i) mod 2^64 >> 32``; each band's ``rows`` values are mixed into one
64-bit key, and ``(band, key, gid)`` rows go to ``bands/<partition>/<file>.parquet`` with ``partition = key % P``.
Pass 2 (per partition, parallel): sort the partition's rows by ``(band, key)``; every bucket with two or more
documents yields candidate pairs.  Only one partition is in memory at a time, and ``P`` grows with the corpus
(:func:`partitions_for`) so that a partition holds at most ``partition_rows`` band rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.corpus import (
    DOC_TABLE_SCHEMA,
    InputFile,
    doc_table,
    gids,
    is_done,
    iter_batches,
    mark_done,
    write_parquet_atomic,
)
from dedup.text import _POS_MULT, mix64, shingle_hashes

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
    #: survivor of a cluster: highest value of this column (if set), then smallest id
    score_column: str | None = None
    seed: int = 1
    #: bucket partitions (at least; more when the corpus has over ``partition_rows`` band rows per partition)
    partitions: int = 16
    partition_rows: int = 1_000_000
    batch_rows: int = 2000
    #: characters of text per verify partition (its documents' texts and shingle sets are what a worker holds)
    verify_chars: int = 32_000_000
    #: buckets up to this size emit all their pairs; larger ones a star around their smallest member
    all_pairs_max_bucket: int = 8
    text_column: str = "text"
    id_column: str = "id"
    #: parallel passes: "local" (this process), "process" (a process pool of `workers`) or "ray"
    executor: str = "local"
    workers: int = 2
    #: documents of these Parquet dirs/globs are matched against but never removed (cross-source dedup)
    references: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bands <= 0 or self.rows <= 0:
            self.bands, self.rows = choose_bands(self.threshold, 112, self.verify)
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"minhash threshold must be in (0, 1], got {self.threshold}")
        if self.executor not in ("local", "process", "ray"):
            raise ValueError(f"minhash executor must be local, process or ray, got {self.executor!r}")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def identity(self) -> dict[str, Any]:
        """The settings that change results (the work folder is named from them)."""
        return {
            k: getattr(self, k)
            for k in (
                "ngram",
                "bands",
                "rows",
                "threshold",
                "verify",
                "score_column",
                "seed",
                "partitions",
                "all_pairs_max_bucket",
                "text_column",
                "id_column",
            )
        }


def partitions_for(docs: int, keys_per_doc: int, minimum: int, partition_rows: int) -> int:
    """Bucket partitions for ``docs`` documents: ``minimum``, or more so that none holds over ``partition_rows`` keys."""
    return max(minimum, -(-docs * keys_per_doc // max(1, partition_rows)))


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


def signatures(texts: list[str], cfg: MinHashConfig, chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """``(sig uint32[len(texts), num_perm], has_shingles bool[len(texts)])`` for one batch of texts."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    h, offsets = shingle_hashes(texts, cfg.ngram)
    n = len(texts)
    sig = np.full((n, cfg.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    counts = np.diff(offsets)
    doc_of = np.repeat(np.arange(n), counts)
    for lo in range(0, len(h), chunk):
        hi = min(lo + chunk, len(h))
        vals = ((h[lo:hi, None] * a[None, :] + b[None, :]) >> _U64(32)).astype(np.uint32)
        d = doc_of[lo:hi]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        mins = np.minimum.reduceat(vals, starts, axis=0)
        rows = d[starts]
        sig[rows] = np.minimum(sig[rows], mins)
    return sig, counts > 0


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


def signature_task(args: tuple[InputFile, MinHashConfig, str]) -> dict[str, Any]:
    """Pass 1 for one input file: band keys to ``bands/<p>/<file>.parquet`` and a doc table; resumable."""
    f, cfg, work = args
    if is_done(work, "signatures", f.key):
        return {"file": f.key, "skipped": True}
    cols = [cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else [])
    parts: list[list[np.ndarray]] = [[] for _ in range(cfg.partitions)]
    pband: list[list[np.ndarray]] = [[] for _ in range(cfg.partitions)]
    pgid: list[list[np.ndarray]] = [[] for _ in range(cfg.partitions)]
    doc_tables = []
    docs = empty = 0
    for first, t in iter_batches(f.path, cols, cfg.batch_rows):
        texts = ["" if x is None else x for x in t.column(cfg.text_column).to_pylist()]
        sig, ok = signatures(texts, cfg)
        g = gids(f.index, first, t.num_rows)
        keys = band_keys(sig[ok], cfg.bands, cfg.rows)
        gk = np.repeat(g[ok], cfg.bands)
        bk = np.tile(np.arange(cfg.bands, dtype=np.uint8), int(ok.sum()))
        flat = keys.reshape(-1)
        p = (flat % _U64(cfg.partitions)).astype(np.int64)
        order = np.argsort(p, kind="stable")
        bounds = np.searchsorted(p[order], np.arange(cfg.partitions + 1))
        for i in range(cfg.partitions):
            sel = order[bounds[i] : bounds[i + 1]]
            parts[i].append(flat[sel])
            pband[i].append(bk[sel])
            pgid[i].append(gk[sel])
        doc_tables.append(doc_table(t, g, cfg.id_column, cfg.score_column, f.protected, cfg.text_column))
        docs += t.num_rows
        empty += int((~ok).sum())
    for i in range(cfg.partitions):
        cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
        table = pa.table(
            {"band": cat(pband[i], np.uint8), "key": cat(parts[i], _U64), "gid": cat(pgid[i], _U64)}
        )
        write_parquet_atomic(table, os.path.join(work, "bands", f"{i:04d}", f"{f.key}.parquet"))
    facts = pa.concat_tables(doc_tables) if doc_tables else DOC_TABLE_SCHEMA.empty_table()
    write_parquet_atomic(facts, os.path.join(work, "doctable", f"{f.key}.parquet"))
    info = {"file": f.key, "path": f.path, "docs": docs, "no_shingles": empty}
    mark_done(work, "signatures", f.key, info)
    return info


def bucket_task(args: tuple[int, MinHashConfig, str]) -> dict[str, Any]:
    """Pass 2 for one partition: candidate pairs ``(a, b)`` with ``a < b`` from every shared band key."""
    part, cfg, work = args
    unit = f"{part:04d}"
    if is_done(work, "buckets", unit):
        return {"partition": part, "skipped": True}
    folder = os.path.join(work, "bands", unit)
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".parquet"))
    t = pa.concat_tables([pq.read_table(p) for p in files]) if files else None
    a_out: list[np.ndarray] = []
    b_out: list[np.ndarray] = []
    if t is not None and t.num_rows:
        band = t.column("band").to_numpy()
        key = t.column("key").to_numpy()
        gid = t.column("gid").to_numpy()
        order = np.lexsort((gid, key, band))
        band, key, gid = band[order], key[order], gid[order]
        new = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])]
        starts = np.flatnonzero(new)
        sizes = np.diff(np.r_[starts, len(key)])
        multi = sizes > 1
        # star edges: smallest gid of each bucket to every other member
        grp = np.repeat(np.arange(len(starts)), sizes)
        root = gid[starts][grp]
        member = ~new & multi[grp]
        a_out.append(root[member])
        b_out.append(gid[member])
        # small buckets: also every other pair, so one false member cannot hide a true pair
        for s, z in zip(
            starts[multi & (sizes <= cfg.all_pairs_max_bucket) & (sizes > 2)],
            sizes[multi & (sizes <= cfg.all_pairs_max_bucket) & (sizes > 2)],
            strict=True,
        ):
            g = gid[s + 1 : s + z]
            i, j = np.triu_indices(len(g), 1)
            a_out.append(g[i])
            b_out.append(g[j])
    a = np.concatenate(a_out) if a_out else np.zeros(0, _U64)
    b = np.concatenate(b_out) if b_out else np.zeros(0, _U64)
    pairs = (
        np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
        if len(a)
        else np.zeros((0, 2), _U64)
    )
    write_parquet_atomic(
        pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}), os.path.join(work, "pairs", f"{unit}.parquet")
    )
    info = {"partition": part, "rows": 0 if t is None else t.num_rows, "pairs": len(pairs)}
    mark_done(work, "buckets", unit, info)
    return info
