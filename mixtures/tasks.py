"""The tasks of a mixture build, one per docs file or shard partition, run by the executor (local, pool or Ray).

* :func:`scan_file`: one docs file -> its token-count and decontamination sidecars (reused while current), then,
  per mixture entry of its source, the documents the entry's predicate selects as fixed-width rows (seeded rank
  hash, id hash, tokens, row, rank value, contaminated or not) written into candidate partitions
  (:mod:`mixtures.partitions`).  No id string and no per-candidate array leaves the task.
* :func:`shuffle_file`: one docs file's sampled rows (written by the partitions' sampling tasks), read once, split
  by shuffle-key partition into work files.
* :func:`write_partition`: one partition's pieces, sorted by shuffle key, cut into shards.

Every task is idempotent (sidecars stamped and written atomically, work files named from their inputs), so a task
Ray retries, or a rerun after a kill, redoes only what is missing.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from mixtures import store
from mixtures.decontam import NGramIndex, decontaminate_file, read_matches
from mixtures.partitions import CANDIDATES, sampled_folder, write_candidates
from mixtures.sample import SHARD_SCHEMA, ShardWriter, id_hashes, key_partitions, seeded_hashes
from mixtures.tokens import ensure_token_counts, get_counter
from mixtures.topics import TOPIC_COLUMN, topic_codes
from pipelines.core import storage
from pipelines.core.folder import Folder, split
from pipelines.core.sql import ident

KEY = "_key"  # the shuffle key column of the work files
PIECE_SCHEMA = SHARD_SCHEMA.append(pa.field(KEY, pa.uint64()))


@dataclass(frozen=True)
class EntryQuery:
    """What a scan task needs of one mixture entry."""

    name: str
    where: str | None
    missing: tuple[tuple[str, str], ...] = ()  # (column, SQL value) for columns the source lacks
    rank: str | None = None  # the column ranked by, when the entry keeps a top fraction
    topic: bool = False  # read the topic column (as taxonomy codes) for per-topic rules and the manifest


@dataclass(frozen=True)
class ScanJob:
    docs_file: str
    file_no: int  # the file's place in the build's sorted listing
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type) over all docs files of the source, no n_tokens
    entries: tuple[tuple[int, EntryQuery], ...]  # (the entry's index in the mixture, its query)
    seed: int
    work: str  # the build's selection folder: candidate partitions go there
    partitions: int  # candidate partitions (R)


@dataclass
class ScanResult:
    file_no: int
    node: str
    tokens_counted: int
    decontam_checked: bool
    matches: dict[int, dict[str, Any]] = field(default_factory=dict)  # row -> {id, benchmark, item, ...}


def current_node() -> str:
    """The Ray node id inside a Ray task, else this machine's host name (recorded per task in the manifest).

    Only a Ray worker asks Ray: a pool worker forked from a driver that runs Ray must not touch its state."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        worker = getattr(getattr(ray, "_private", None), "worker", None)
        if worker is not None and worker.global_worker.mode == ray.WORKER_MODE:
            return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


_CONNECTION: tuple[int, duckdb.DuckDBPyConnection] | None = None


def worker_connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per worker process (opening one costs ~0.2 s, more than a small file's scan),
    single-threaded: the executor already runs one task per core.  It is closed before this process forks (a
    process pool started later), since a child that inherits a used DuckDB crashes when it opens its own."""
    global _CONNECTION
    if _CONNECTION is None or _CONNECTION[0] != os.getpid():
        con = duckdb.connect()
        con.execute("SET threads = 1")
        if _CONNECTION is None:
            os.register_at_fork(before=_close_connection)
        _CONNECTION = (os.getpid(), con)
    return _CONNECTION[1]


def _close_connection() -> None:
    global _CONNECTION
    if _CONNECTION is not None and _CONNECTION[0] == os.getpid():
        _CONNECTION[1].close()
    _CONNECTION = (-1, None)  # type: ignore[assignment]  # registered once; the next call opens a new one


def column_list(columns: tuple[tuple[str, str], ...], present: set[str] | None = None) -> str:
    """The SELECT list of a source's columns; those a docs file lacks are NULLs of the source's type."""
    return ", ".join(
        ident(n) if present is None or n in present else f"CAST(NULL AS {t}) AS {ident(n)}"
        for n, t in columns
    )


def entry_sql(view: str, names: set[str], entry: EntryQuery) -> str:
    """The documents of ``view`` an entry selects: id, n_tokens, _row (and _r, the rank value)."""
    extra = "".join(f", {v} AS {ident(k)}" for k, v in entry.missing if k not in names)
    rank = f", CAST({ident(entry.rank)} AS DOUBLE) AS _r" if entry.rank else ""
    rank += f", CAST({ident(TOPIC_COLUMN)} AS VARCHAR) AS _topic" if entry.topic else ""
    where = f"WHERE ({entry.where})" if entry.where else ""
    return f"SELECT id, n_tokens, _row{rank} FROM (SELECT *{extra} FROM {view}) {where}"


def _names_text(entries: tuple[EntryQuery, ...]) -> bool:
    """Whether any entry's SQL mentions a ``text`` column (a word, any case; a false yes only costs a read)."""
    sql = " ".join(f"{e.where or ''} {' '.join(v for _, v in e.missing)}" for e in entries)
    return re.search(r"\btext\b", sql, re.IGNORECASE) is not None


def scan_file(job: ScanJob, tokenizer: str, index: NGramIndex | None) -> ScanResult:
    """Sidecars of one docs file, then each entry's candidates in it (see the module docstring)."""
    tokens_path, counted = ensure_token_counts(job.docs_file, get_counter(tokenizer))
    matches, checked = {}, False
    if index is not None:
        path, checked = decontaminate_file(job.docs_file, index)
        matches = read_matches(path)
    # read with pyarrow (local or object store alike) and queried in DuckDB as Arrow: no httpfs needed; the text,
    # most of a docs file's bytes, only when a predicate names it
    names = store.read_schema(job.docs_file).names
    docs = store.read_table(
        job.docs_file, [n for n in names if n != "text" or _names_text(tuple(e for _, e in job.entries))]
    )
    docs = docs.append_column("_row_no", pa.array(np.arange(docs.num_rows, dtype=np.int64)))
    tokens = store.read_table(tokens_path, columns=["id", "n_tokens"])
    con = worker_connection()
    con.register("_docs", docs)
    con.register("_tokens", tokens)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW f AS SELECT {column_list(job.columns, set(docs.column_names))}, t.n_tokens, "
        "d._row_no AS _row FROM (SELECT * FROM _docs "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _row_no) = 1) d "
        "JOIN (SELECT id, any_value(n_tokens) AS n_tokens FROM _tokens GROUP BY id) t USING (id)"
    )
    names = {n for n, _ in job.columns} | {"n_tokens"}
    out, found = [], {}
    for k, entry in job.entries:
        table = con.sql(entry_sql("f", names, entry)).to_arrow_table()
        ids = table.column("id").to_pylist()
        rows = table.column("_row").to_numpy().astype(np.int64)
        bad = np.array([i in matches for i in ids], dtype=bool)
        found.update({int(rows[m]): {"id": ids[m], **matches[ids[m]].__dict__} for m in np.flatnonzero(bad)})
        n = len(ids)
        out.append(
            pa.table(
                {
                    "entry": np.full(n, k, np.int16),
                    "rank_hash": seeded_hashes(job.seed, entry.name, ids),
                    "id_hash": id_hashes(ids),
                    "file_no": np.full(n, job.file_no, np.int32),
                    "row": rows,
                    "n_tokens": table.column("n_tokens").to_numpy().astype(np.int64),
                    "rank": table.column("_r").to_numpy(zero_copy_only=False).astype(np.float64)
                    if entry.rank
                    else np.full(n, np.nan),
                    "contaminated": bad,
                    "topic": topic_codes(table.column("_topic")) if entry.topic else np.full(n, -1, np.int16),
                },
                schema=CANDIDATES,
            )
        )
    con.execute("DROP VIEW f")
    con.unregister("_docs")
    con.unregister("_tokens")
    write_candidates(job.work, job.partitions, job.file_no, pa.concat_tables(out))
    return ScanResult(job.file_no, current_node(), counted, bool(checked), found)


@dataclass(frozen=True)
class ShuffleJob:
    """One docs file whose sampled rows (entry, epoch, tokens, shuffle key) the sampling tasks wrote under
    ``selection``; ``partitions`` shard partitions (ranges of the shuffle key)."""

    docs_file: str
    file_no: int
    selection: str  # the build's selection folder (:mod:`mixtures.partitions`)
    work: str  # the build's shuffle folder (shared by every node)
    names: tuple[str, ...]  # entry names, indexed by ``entry``
    partitions: int


def piece_path(work: str, partition: int, file_no: int) -> str:
    return storage.join(work, f"p-{partition:05d}", f"f-{file_no:06d}.parquet")


def shuffle_file(job: ShuffleJob) -> tuple[str, list[tuple[int, str]]]:
    """Read the docs file once, write its selected rows into one piece per partition; (node, [(partition, path)]).

    Pieces already there (a rerun of a killed build: the work folder is named from the build's inputs) are kept;
    each piece is written atomically, so one that exists is whole."""
    listed = Folder(sampled_folder(job.selection, job.file_no)).list(suffix=".parquet")
    picked = pa.concat_tables([store.read_table(o.uri) for o in listed]).sort_by("row") if listed else None
    if picked is None or not picked.num_rows:
        return current_node(), []
    key = picked.column("key").to_numpy()
    part = key_partitions(key, job.partitions)
    pieces = [(p, piece_path(job.work, p, job.file_no)) for p in np.unique(part).tolist()]
    todo = [(p, path) for p, path in pieces if store.file_info(path) is None]
    if not todo:
        return current_node(), pieces
    docs = store.read_table(job.docs_file, columns=["id", "source", "url", "text", "meta"])
    rows = docs.take(picked.column("row"))
    table = pa.table(
        {
            "id": rows.column("id"),
            "source": rows.column("source"),
            "url": rows.column("url"),
            "text": rows.column("text").cast(pa.large_string()),
            "meta": rows.column("meta"),
            "n_tokens": picked.column("n_tokens"),
            "mix_source": pa.array(
                np.asarray(job.names, dtype=object)[picked.column("entry").to_numpy()], pa.string()
            ),
            "epoch": picked.column("epoch"),
            KEY: picked.column("key"),
        }
    ).cast(PIECE_SCHEMA)
    for p, path in todo:
        store.write_table(path, table.filter(pa.array(part == p)))
    return current_node(), pieces


@dataclass(frozen=True)
class PartitionJob:
    partition: int
    folder: str  # where the shards go
    max_tokens: int
    work: str  # the shuffle folder: the partition's pieces, and its done marker


def done_marker(work: str, partition: int) -> str:
    return storage.join(work, "done", f"p-{partition:05d}.json")


def write_partition(job: PartitionJob) -> tuple[str, list[dict[str, Any]]]:
    """One partition's rows in shuffle-key order, cut into ``shard-<partition>-<n>.parquet``; (node, shards).

    A marker listing the shards is written after them: a rerun finds it and writes nothing."""
    marker = done_marker(job.work, job.partition)
    folder, name = split(marker)
    if store.file_info(marker) is not None:
        return current_node(), folder.read_json(name)
    pieces = Folder(storage.join(job.work, f"p-{job.partition:05d}")).list(suffix=".parquet")
    table = pa.concat_tables([store.read_table(p.uri) for p in pieces]).sort_by(
        [(KEY, "ascending"), ("mix_source", "ascending"), ("id", "ascending"), ("epoch", "ascending")]
    )
    writer = ShardWriter(job.folder, job.max_tokens, prefix=f"shard-{job.partition:05d}-")
    writer.write(table.drop_columns([KEY]).cast(SHARD_SCHEMA))
    writer.flush()
    folder.write_json(name, writer.shards)
    return current_node(), writer.shards
