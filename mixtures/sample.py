"""Deterministic token-budget sampling and shard writing, on fixed-width integers only.

Sampling depends only on the seed, the mixture entry and the document id (never on file order or worker count):
documents are ranked by ``xxh64(seed:entry:id)`` (ties, a 64-bit collision, by a second hash of the id); a target
of ``T`` tokens over ``A`` available takes ``floor(T/A)`` full epochs and then, in rank order, the documents that
fill the remainder most closely.  Output rows are ordered by a shuffle key mixed from that rank hash and the epoch
(:func:`shuffle_keys`), which shuffles sources together and spreads an epoch's repeats; the key range is cut into
partitions, each written by its own task, so no step sorts the whole selection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import xxhash

from pipelines.core.folder import Folder
from pipelines.core.schema import CORE_FIELDS

#: a mixture shard row: the core document columns (nullable here, as shards always wrote them), then the mixture's
SHARD_SCHEMA = pa.schema(
    [f.with_nullable(True) for f in CORE_FIELDS]
    + [pa.field("n_tokens", pa.int64()), pa.field("mix_source", pa.string()), pa.field("epoch", pa.int32())]
)
#: the seed of the id hash that breaks ties of the seeded rank hash and tells duplicate ids apart
ID_HASH_SEED = 0x5EED


def seeded_hashes(seed: int, entry: str, ids: Iterable[str], suffix: str = "") -> np.ndarray:
    prefix = f"{seed}:{entry}:"
    return np.fromiter(
        (xxhash.xxh64_intdigest(f"{prefix}{i}{suffix}".encode()) for i in ids), dtype=np.uint64
    )


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """A second 64-bit hash of each id: with the seeded hash, a 128-bit fingerprint of the id."""
    return np.fromiter((xxhash.xxh64_intdigest(i.encode(), ID_HASH_SEED) for i in ids), dtype=np.uint64)


def sample_ranked(tokens: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """(positions, epochs) of the rows, in rank order, whose tokens come closest to ``target``: whole epochs, then
    a seeded partial one.  ``tokens`` are the candidates' token counts in rank order."""
    tokens = np.asarray(tokens, dtype=np.int64)
    available = int(tokens.sum())
    if target <= 0 or available <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    full = int(math.floor(target / available))
    part = partial_epoch(tokens, target - full * available)
    every = np.arange(len(tokens), dtype=np.int64)
    positions = np.concatenate([every] * full + [part])
    epochs = np.concatenate(
        [np.full(len(tokens), e, np.int32) for e in range(full)] + [np.full(len(part), full, np.int32)]
    )
    return positions, epochs


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def shuffle_keys(rank_hashes: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """The output order of rows: splitmix64 of (the row's seeded id hash + epoch x golden ratio), uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(rank_hashes, np.uint64) + np.asarray(epochs, np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def key_partitions(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) of each shuffle key: ``partitions`` equal ranges of the uint64 space."""
    if partitions >= 1 << 32:
        raise ValueError("at most 2**32 - 1 shard partitions")
    return ((np.asarray(keys, np.uint64) >> np.uint64(32)) * np.uint64(partitions)) >> np.uint64(32)


@dataclass(frozen=True)
class Walk:
    """Where :func:`walk_partial` stands after some documents of a partial epoch: the tokens taken so far, whether
    the plain prefix is over (``greedy``), whether the walk stopped (``done``), the documents it took and the
    smallest document it skipped as ``(tokens, position)`` (the one overshoot that may land closer)."""

    total: int = 0
    greedy: bool = False
    done: bool = False
    taken: int = 0
    skipped: tuple[int, int] | None = None


def walk_partial(
    tokens: np.ndarray, remainder: float, start: Walk = Walk(), offset: int = 0
) -> tuple[np.ndarray, Walk]:
    """Continue a partial epoch over the next documents in rank order: (positions taken, the new state).

    Take every document that still fits, in rank order, so the slice is a seeded random sample; once the gap is
    within 0.1%, stop.  The walk may be cut anywhere (one partition after another) and continued from its state
    with the same result as over the whole list; ``offset`` numbers the positions of ``skipped``."""
    if start.done or remainder <= 0:
        return np.zeros(0, np.int64), start
    tokens = np.asarray(tokens, dtype=np.int64)
    total, k = start.total, 0
    if not start.greedy:  # the plain prefix that fits
        cum = total + np.cumsum(tokens)
        k = int(np.searchsorted(cum, remainder, side="right"))
        total = int(cum[k - 1]) if k else total
        if k == len(tokens):
            return np.arange(k, dtype=np.int64), Walk(total, False, False, start.taken + k, start.skipped)
    taken, skipped, done = list(range(k)), start.skipped, False
    for i in range(k, len(tokens)):
        if remainder - total <= remainder * 1e-3:
            done = True
            break
        n = int(tokens[i])
        if total + n <= remainder:
            taken.append(i)
            total += n
        elif skipped is None or n < skipped[0]:  # the earliest of the smallest: it lands closest
            skipped = (n, offset + i)
    out = np.array(taken, dtype=np.int64)
    return out, Walk(total, True, done, start.taken + len(out), skipped)


def overshoot(walk: Walk, remainder: float) -> int | None:
    """The position of the one skipped document that lands closer to ``remainder`` than stopping short, if any.

    Every skipped document overshoots the final total (it did not fit when it was skipped, and the total only
    grew), so the smallest one lands closest."""
    if walk.skipped is None:
        return None
    n, position = walk.skipped
    return position if abs(walk.total + n - remainder) < remainder - walk.total else None


def partial_epoch(tokens: np.ndarray, remainder: float) -> np.ndarray:
    """Positions (in rank order) whose tokens sum closest to ``remainder`` (:func:`walk_partial` over the whole
    list, then the closest overshoot).  Skipping only the documents that would overshoot keeps the error below one
    document's size even when documents are long next to the target (books in a small budget)."""
    if remainder <= 0:
        return np.zeros(0, np.int64)
    taken, walk = walk_partial(tokens, remainder)
    best = overshoot(walk, remainder)
    return taken if best is None else np.sort(np.append(taken, best))


class ShardWriter:
    """Cuts the shuffled stream into ``shard-NNNNN.parquet`` files of at most ``max_tokens`` (one doc may exceed).

    Each shard is written in one call from one contiguous table, so identical rows give identical bytes whatever
    the batch boundaries of the stream were.
    """

    def __init__(self, folder: str, max_tokens: int, row_group_size: int = 10_000, prefix: str = "shard-"):
        self.folder, self.max_tokens, self.row_group_size = folder, max(1, max_tokens), row_group_size
        self.prefix = prefix
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
        name = f"{self.prefix}{len(self.shards):05d}.parquet"
        # written atomically (a retried task never leaves half a shard behind), locally or on an object store
        Folder(self.folder).write_table(name, table, compression="zstd", row_group_size=self.row_group_size)
        self.shards.append({"file": name, "documents": table.num_rows, "tokens": self._tokens})
        self._batches, self._tokens = [], 0
