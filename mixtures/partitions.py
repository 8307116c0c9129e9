"""The per-candidate work of a mixture build, as tasks over candidate partitions (the driver holds only a plan).

A scan task writes each docs file's candidates (:data:`CANDIDATES`: entry, seeded rank hash, id hash, file and row,
tokens, rank value, contaminated, topic code) into ``R`` partitions by ranges of the rank hash
(:func:`write_candidates`), a seeded hash of the document id: every copy of an id lands in the same partition,
and partition ``p`` holds ranks below those of ``p + 1``, so the entry's sampling order is the partitions in turn.
Then, one task per partition and pass, each reading and writing through the storage object:

* :func:`dedup_partition`: one copy per id (the first file's, as before), in rank order; counts per entry;
* :func:`histogram_partition`: a histogram of the next 8 bits of the rank key (or the keys themselves) below a
  prefix, so the driver finds the exact ``top_fraction`` cut in a few rounds (:mod:`mixtures.select`);
* :func:`cut_partition`: the cut applied (ties by id, chosen by the driver), contaminated documents out; totals;
* :func:`probe_partition`: a partial epoch walked over the partition from a given state (:func:`walk_partial`);
* :func:`sample_partition`: the sampled rows, with epochs and shuffle keys, written per docs file for its shuffle.

Every task writes atomically under names from its inputs, so a retried task or a rerun rewrites the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mixtures import store
from mixtures.sample import Walk, key_partitions, shuffle_keys, walk_partial
from pipelines.core import storage
from pipelines.core.folder import Folder

CANDIDATES = pa.schema(
    [
        ("entry", pa.int16()),
        ("rank_hash", pa.uint64()),
        ("id_hash", pa.uint64()),
        ("file_no", pa.int32()),
        ("row", pa.int64()),
        ("n_tokens", pa.int64()),
        ("rank", pa.float64()),  # the rank column's value (NaN: NULL or none), entries with top_fraction
        ("contaminated", pa.bool_()),
        ("topic", pa.int16()),  # taxonomy code, -1: none
    ]
)
SAMPLED = pa.schema(
    [
        ("file_no", pa.int32()),
        ("row", pa.int64()),
        ("entry", pa.int16()),
        ("epoch", pa.int32()),
        ("n_tokens", pa.int64()),
        ("key", pa.uint64()),
    ]
)
ALL = -2  # the group of an entry's documents that is not split by topic
RAW_KEYS = 1 << 16  # a histogram bucket this small comes back as its keys: the last round


def scan_path(work: str, partition: int, file_no: int) -> str:
    return storage.join(work, f"c-{partition:05d}", f"f-{file_no:06d}.parquet")


def sampled_folder(work: str, file_no: int) -> str:
    return storage.join(work, f"f-{file_no:06d}")


def write_candidates(work: str, partitions: int, file_no: int, table: pa.Table) -> None:
    """One docs file's candidates (:data:`CANDIDATES`), one file per partition that has any."""
    part = key_partitions(table.column("rank_hash").to_numpy(), partitions)
    for p in np.unique(part).tolist():
        store.write_table(scan_path(work, p, file_no), table.filter(pa.array(part == p)))


def rank_keys(rank: np.ndarray) -> np.ndarray:
    """uint64 keys whose order is "best first": rank value descending, NULL (NaN) last, -0.0 equal to 0.0."""
    value = np.where(np.isnan(rank), np.inf, -rank) + 0.0
    bits = value.view(np.uint64)
    top = np.uint64(1 << 63)
    return np.where(bits & top, ~bits, bits | top)


def _read(path: str) -> pa.Table:
    return store.read_table(path) if store.file_info(path) is not None else CANDIDATES.empty_table()


@dataclass(frozen=True)
class PartitionTask:
    """A pass over candidate partition ``partition``; ``requests`` are the pass's per-entry (or group) asks."""

    work: str
    partition: int
    requests: tuple[Any, ...] = ()


def dedup_path(work: str, partition: int) -> str:
    return storage.join(work, f"d-{partition:05d}.parquet")


def cut_path(work: str, partition: int) -> str:
    return storage.join(work, f"s-{partition:05d}.parquet")


def dedup_partition(task: PartitionTask) -> dict[int, int]:
    """One copy per (entry, id): the first file's; in (entry, rank) order.  Returns candidates per entry."""
    listed = Folder(storage.join(task.work, f"c-{task.partition:05d}")).list(suffix=".parquet")
    table = (
        pa.concat_tables([store.read_table(o.uri) for o in listed]) if listed else CANDIDATES.empty_table()
    )
    cols = {n: table.column(n).to_numpy() for n in ("entry", "rank_hash", "id_hash", "file_no")}
    order = np.lexsort((cols["file_no"], cols["id_hash"], cols["rank_hash"], cols["entry"]))
    same = np.ones(max(0, len(order) - 1), dtype=bool)
    for name in ("entry", "rank_hash", "id_hash"):
        v = cols[name][order]
        same &= v[1:] == v[:-1]
    first = np.concatenate([[True], ~same])[: len(order)]
    kept = table.take(pa.array(order[first]))
    store.write_table(dedup_path(task.work, task.partition), kept)
    entries, counts = np.unique(kept.column("entry").to_numpy(), return_counts=True)
    return dict(zip(entries.tolist(), counts.tolist(), strict=True))


def _keys(table: pa.Table, entry: int) -> np.ndarray:
    mine = table.column("entry").to_numpy() == entry
    return rank_keys(table.column("rank").to_numpy()[mine])


def _under(keys: np.ndarray, prefix: int, bits: int) -> np.ndarray:
    return keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)]


def histogram_partition(task: PartitionTask) -> list[np.ndarray]:
    """Per request ``(entry, prefix, bits, raw)``: among the entry's rank keys whose top ``bits`` are ``prefix``,
    counts of the next 8 bits (256 int64), or with ``raw`` the keys themselves."""
    table = store.read_table(dedup_path(task.work, task.partition), columns=["entry", "rank"])
    out = []
    for entry, prefix, bits, raw in task.requests:
        keys = _under(_keys(table, entry), prefix, bits)
        if raw:
            out.append(np.sort(keys))
        else:
            digit = (keys >> np.uint64(56 - bits)) & np.uint64(255)
            out.append(np.bincount(digit.astype(np.int64), minlength=256))
    return out


def tied_partition(task: PartitionTask) -> list[np.ndarray]:
    """Per request ``(entry, key)``: (file_no, row) pairs, shape (n, 2), of the entry's documents at that key."""
    table = store.read_table(
        dedup_path(task.work, task.partition), columns=["entry", "rank", "file_no", "row"]
    )
    entry_col = table.column("entry").to_numpy()
    out = []
    for entry, key in task.requests:
        mine = entry_col == entry
        at = _keys(table, entry) == np.uint64(key)
        f = table.column("file_no").to_numpy()[mine][at]
        r = table.column("row").to_numpy()[mine][at]
        out.append(np.stack([f.astype(np.int64), r], axis=1))
    return out


@dataclass
class PartitionTotals:
    """What a cut pass tells the driver of one partition, per entry: candidates after the cut, contaminated
    (file_no, row) pairs (few), and per group (:data:`ALL` and each topic code) (documents, tokens)."""

    candidates: dict[int, int]
    contaminated: dict[int, list[tuple[int, int]]]
    groups: dict[int, dict[int, tuple[int, int]]]


def cut_partition(task: PartitionTask) -> PartitionTotals:
    """Per request ``(entry, key, tied)`` (key None: no cut; ``tied`` None: every document at the key goes in,
    else the (file_no, row) pairs that do): the cut applied, then contaminated documents out."""
    table = store.read_table(dedup_path(task.work, task.partition))
    entry_col = table.column("entry").to_numpy()
    keep = np.ones(table.num_rows, dtype=bool)
    for entry, key, tied in task.requests:
        if key is None:
            continue
        mine = np.flatnonzero(entry_col == entry)
        keys = _keys(table, entry)
        ok = keys < np.uint64(key)
        at = keys == np.uint64(key)
        if tied is None:
            ok |= at
        elif len(tied):
            pair = (
                table.column("file_no").to_numpy()[mine].astype(np.int64) << 40
                | table.column("row").to_numpy()[mine]
            )
            chosen = np.asarray(tied, np.int64)
            ok |= at & np.isin(pair, chosen[:, 0] << 40 | chosen[:, 1])
        keep[mine] = ok
    table = table.filter(pa.array(keep))
    entry_col = table.column("entry").to_numpy()
    bad = table.column("contaminated").to_numpy(zero_copy_only=False)
    totals = PartitionTotals({}, {}, {})
    for entry in np.unique(entry_col).tolist():
        mine = entry_col == entry
        totals.candidates[entry] = int(mine.sum())
        dirty = mine & bad
        pairs = zip(
            table.column("file_no").to_numpy()[dirty].tolist(),
            table.column("row").to_numpy()[dirty].tolist(),
            strict=True,
        )
        totals.contaminated[entry] = list(pairs)
    table = table.filter(pa.array(~bad)).select(["entry", "rank_hash", "file_no", "row", "n_tokens", "topic"])
    store.write_table(cut_path(task.work, task.partition), table)
    entry_col, topic, tokens = (table.column(n).to_numpy() for n in ("entry", "topic", "n_tokens"))
    for entry in np.unique(entry_col).tolist():
        mine = entry_col == entry
        groups = {ALL: (int(mine.sum()), int(tokens[mine].sum()))}
        for t in np.unique(topic[mine]).tolist():
            at = mine & (topic == t)
            groups[t] = (int(at.sum()), int(tokens[at].sum()))
        totals.groups[entry] = groups
    return totals


def _members(table: pa.Table, entry: int, group: int) -> np.ndarray:
    mine = table.column("entry").to_numpy() == entry
    if group != ALL:
        mine &= table.column("topic").to_numpy() == group
    return np.flatnonzero(mine)


def partition_offset(partition: int) -> int:
    """Positions of a partition's documents in skip records: (partition, row in it) in one ordered integer."""
    return partition << 40


def probe_partition(task: PartitionTask) -> list[Walk]:
    """Per request ``(entry, group, remainder, walk)``: the walk continued over the group's documents here."""
    table = store.read_table(cut_path(task.work, task.partition), columns=["entry", "topic", "n_tokens"])
    tokens = table.column("n_tokens").to_numpy()
    out = []
    for entry, group, remainder, walk in task.requests:
        idx = _members(table, entry, group)
        out.append(walk_partial(tokens[idx], remainder, walk, partition_offset(task.partition))[1])
    return out


@dataclass(frozen=True)
class GroupSample:
    """What one group takes of one partition: ``full`` whole epochs, then in epoch ``full`` either every document
    (``walk`` None and ``partial``), none, or a walk from ``walk`` toward ``remainder``; plus the overshoot
    document at ``extra`` (its position among the group's documents here), if it is here."""

    entry: int
    group: int
    full: int
    partial: bool
    remainder: float = 0.0
    walk: Walk | None = None
    extra: int | None = None


def sample_partition(task: PartitionTask) -> tuple[list[int], dict[int, dict[int, int]]]:
    """The sampled rows of the partition, written per docs file; (docs files touched, realised tokens per entry
    and topic code)."""
    table = store.read_table(cut_path(task.work, task.partition))
    cols = {n: table.column(n).to_numpy() for n in table.column_names}
    picks: list[tuple[np.ndarray, np.ndarray]] = []
    for g in task.requests:
        idx = _members(table, g.entry, g.group)
        every = np.arange(len(idx), dtype=np.int64)
        positions = [every] * g.full
        epochs = [np.full(len(idx), e, np.int32) for e in range(g.full)]
        if g.partial:
            part = every if g.walk is None else walk_partial(cols["n_tokens"][idx], g.remainder, g.walk)[0]
            if g.extra is not None:
                part = np.sort(np.append(part, g.extra))
            positions.append(part)
            epochs.append(np.full(len(part), g.full, np.int32))
        if positions:
            picks.append((idx[np.concatenate(positions)], np.concatenate(epochs)))
    at = np.concatenate([p for p, _ in picks]) if picks else np.zeros(0, np.int64)
    epoch = np.concatenate([e for _, e in picks]) if picks else np.zeros(0, np.int32)
    rows = pa.table(
        {
            "file_no": cols["file_no"][at],
            "row": cols["row"][at],
            "entry": cols["entry"][at],
            "epoch": epoch,
            "n_tokens": cols["n_tokens"][at],
            "key": shuffle_keys(cols["rank_hash"][at], epoch),
        },
        schema=SAMPLED,
    )
    realised: dict[int, dict[int, int]] = {}
    group = cols["entry"][at].astype(np.int64) << 16 | (cols["topic"][at].astype(np.int64) + 1)
    groups, inverse = np.unique(group, return_inverse=True)
    sums = np.bincount(inverse, weights=cols["n_tokens"][at], minlength=len(groups))
    for g, n in zip(groups.tolist(), sums.tolist(), strict=True):
        realised.setdefault(g >> 16, {})[(g & 0xFFFF) - 1] = int(n)
    files = np.unique(rows.column("file_no").to_numpy()).tolist()
    file_col = rows.column("file_no").to_numpy()
    for f in files:
        path = storage.join(sampled_folder(task.work, f), f"p-{task.partition:05d}.parquet")
        store.write_table(path, rows.filter(pa.array(file_col == f)))
    return files, realised
