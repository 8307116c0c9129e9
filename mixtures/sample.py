"""Deterministic token-budget sampling and shard writing.

Sampling depends only on the seed, the mixture entry and the document id (never on file order or worker count):
documents are ranked by ``xxh64(seed:entry:id)``; a target of ``T`` tokens over ``A`` available takes
``floor(T/A)`` full epochs and then, in rank order, the documents that fill the remainder most closely.  Output rows
are ordered by ``xxh64(seed:entry:id:epoch)``, which shuffles sources together and spreads an epoch's repeats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

SHARD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("text", pa.large_string()),
        ("meta", pa.string()),
        ("n_tokens", pa.int64()),
        ("mix_source", pa.string()),
        ("epoch", pa.int32()),
    ]
)
SELECTION_SCHEMA = pa.schema(
    [
        ("origin", pa.string()),
        ("mix_source", pa.string()),
        ("id", pa.string()),
        ("epoch", pa.int32()),
        ("n_tokens", pa.int64()),
        ("shuffle_key", pa.uint64()),
    ]
)


def seeded_hashes(seed: int, entry: str, ids: Iterable[str], suffix: str = "") -> np.ndarray:
    prefix = f"{seed}:{entry}:"
    return np.fromiter(
        (xxhash.xxh64_intdigest(f"{prefix}{i}{suffix}".encode()) for i in ids), dtype=np.uint64
    )


@dataclass
class Sampled:
    ids: list[str]
    epochs: np.ndarray  # int32 per selected row
    n_tokens: np.ndarray  # int64 per selected row

    @property
    def tokens(self) -> int:
        return int(self.n_tokens.sum())


def sample_tokens(ids: list[str], n_tokens: np.ndarray, target: float, seed: int, entry: str) -> Sampled:
    """Rows (id, epoch) whose tokens come closest to ``target``: whole epochs, then a seeded partial one."""
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    available = int(n_tokens.sum())
    if target <= 0 or available <= 0 or not ids:
        return Sampled([], np.zeros(0, np.int32), np.zeros(0, np.int64))
    rank = np.lexsort((np.array(ids, dtype=object), seeded_hashes(seed, entry, ids)))
    ids_r = [ids[i] for i in rank]
    tok_r = n_tokens[rank]
    full = int(math.floor(target / available))
    remainder = target - full * available
    part = partial_epoch(tok_r, remainder)
    out_ids = ids_r * full + [ids_r[i] for i in part]
    epochs = np.concatenate(
        [np.full(len(ids_r), e, np.int32) for e in range(full)] + [np.full(len(part), full, np.int32)]
    )
    toks = np.concatenate([tok_r] * full + [tok_r[part]])
    return Sampled(out_ids, epochs, toks)


def partial_epoch(tokens: np.ndarray, remainder: float) -> np.ndarray:
    """Positions (in rank order) whose tokens sum closest to ``remainder``.

    Take every document that still fits, in rank order, so the slice is a seeded random sample; once the gap is
    within 0.1%, stop.  Skipping only the documents that would overshoot keeps the error below one document's
    size even when documents are long next to the target (books in a small budget).
    """
    if remainder <= 0:
        return np.zeros(0, np.int64)
    cum = np.cumsum(tokens)
    k = int(np.searchsorted(cum, remainder, side="right"))  # the plain prefix that fits
    taken = list(range(k))
    total = int(cum[k - 1]) if k else 0
    skipped: list[int] = []
    for i in range(k, len(tokens)):
        if remainder - total <= remainder * 1e-3:
            break
        n = int(tokens[i])
        if total + n <= remainder:
            taken.append(i)
            total += n
        else:
            skipped.append(i)
    if skipped:  # one overshooting document may land closer than stopping short
        best = min(skipped, key=lambda i: (abs(total + int(tokens[i]) - remainder), i))
        if abs(total + int(tokens[best]) - remainder) < remainder - total:
            taken.append(best)
    return np.array(sorted(taken), dtype=np.int64)


def selection_table(origin: str, entry: str, sampled: Sampled, seed: int) -> pa.Table:
    keys = np.fromiter(
        (
            xxhash.xxh64_intdigest(f"{seed}:{entry}:{i}:{e}".encode())
            for i, e in zip(sampled.ids, sampled.epochs.tolist(), strict=True)
        ),
        dtype=np.uint64,
        count=len(sampled.ids),
    )
    n = len(sampled.ids)
    return pa.table(
        {
            "origin": pa.array([origin] * n, pa.string()),
            "mix_source": pa.array([entry] * n, pa.string()),
            "id": pa.array(sampled.ids, pa.string()),
            "epoch": pa.array(sampled.epochs, pa.int32()),
            "n_tokens": pa.array(sampled.n_tokens, pa.int64()),
            "shuffle_key": pa.array(keys, pa.uint64()),
        },
        schema=SELECTION_SCHEMA,
    )


class ShardWriter:
    """Cuts the shuffled stream into ``shard-NNNNN.parquet`` files of at most ``max_tokens`` (one doc may exceed).

    Each shard is written in one call from one contiguous table, so identical rows give identical bytes whatever
    the batch boundaries of the stream were.
    """

    def __init__(self, folder: str, max_tokens: int, row_group_size: int = 10_000):
        self.folder, self.max_tokens, self.row_group_size = folder, max(1, max_tokens), row_group_size
        self._batches: list[pa.Table] = []
        self._tokens = 0
        self.shards: list[dict] = []

    def write(self, table: pa.Table) -> None:
        counts = table.column("n_tokens").to_numpy()
        start = 0
        while start < table.num_rows:
            room = self.max_tokens - self._tokens
            cum = np.cumsum(counts[start:])
            take = int(np.searchsorted(cum, room, side="right"))
            if take == 0 and not self._batches:
                take = 1  # a single document larger than a shard gets a shard of its own
            if take:
                self._batches.append(table.slice(start, take))
                self._tokens += int(cum[take - 1])
                start += take
            if start < table.num_rows:
                self.flush()

    def flush(self) -> None:
        if not self._batches:
            return
        table = pa.concat_tables(self._batches).combine_chunks()
        name = f"shard-{len(self.shards):05d}.parquet"
        pq.write_table(
            table, os.path.join(self.folder, name), compression="zstd", row_group_size=self.row_group_size
        )
        self.shards.append({"file": name, "documents": table.num_rows, "tokens": self._tokens})
        self._batches, self._tokens = [], 0
