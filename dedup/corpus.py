"""The inputs of a dedup workflow: Parquet files of documents, each with a stable index and a protected flag.

A document is addressed by ``gid = file_index << 32 | row``: no string ids travel through the hash passes, and a
removal pass finds its rows by number.  Files of a *reference* corpus (e.g. Wikipedia when deduplicating
CommonCrawl against it) take part in the matching but are never removed from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.text import mix64
from pipelines.core import storage
from pipelines.core.corpus_files import InputFile, build_inputs, fingerprint, list_parquet  # noqa: F401 - re-exported
from pipelines.core.folder import Folder, Staged, split

ROW_BITS = 32


# -- files of a work folder or a source, local or on an object store (s3://, gs://) -----------------------------
def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file (a local path or a URI, read through pyarrow.fs)."""
    if storage.is_uri(path):
        fs, inner = storage.resolve(path)
        return pq.read_table(inner, columns=columns, filesystem=fs)
    return pq.read_table(path, columns=columns)


def parquet_file(path: str) -> pq.ParquetFile:
    """A Parquet file opened for row groups and metadata (ranged reads on an object store)."""
    if storage.is_uri(path):
        folder, name = split(path)
        return pq.ParquetFile(folder.open_input_file(name))
    return pq.ParquetFile(path)


def exists(path: str) -> bool:
    """A file or folder (an object, or a prefix holding objects) at ``path``."""
    return storage.exists(path) if storage.is_uri(path) else os.path.exists(path)


def remove_tree(path: str) -> None:
    """Delete the folder ``path`` and everything under it; nothing happens when it is absent."""
    if not storage.is_uri(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    fs, inner = storage.resolve(path)
    fs.delete_dir_contents(inner, missing_dir_ok=True)
    with contextlib.suppress(FileNotFoundError, OSError):
        fs.delete_dir(inner)


def check_columns(path: str, needed: list[str]) -> None:
    names = parquet_file(path).schema_arrow.names
    missing = [c for c in needed if c not in names]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; dedup inputs need {needed} (found {names})")


def iter_batches(path: str, columns: list[str], batch_rows: int) -> Iterator[tuple[int, pa.Table]]:
    """``(first_row, table)`` batches of a Parquet file, in row order."""
    pf = parquet_file(path)
    row = 0
    for rb in pf.iter_batches(batch_size=batch_rows, columns=columns):
        t = pa.Table.from_batches([rb])
        yield row, t
        row += t.num_rows


def gids(file_index: int, first_row: int, n: int) -> np.ndarray:
    return (np.uint64(file_index) << np.uint64(ROW_BITS)) | np.arange(
        first_row, first_row + n, dtype=np.uint64
    )


DOC_TABLE_SCHEMA = pa.schema(
    [
        ("gid", pa.uint64()),
        ("id", pa.string()),
        ("score", pa.float64()),
        ("protected", pa.bool_()),
        ("chars", pa.int64()),
    ]
)


def _score(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A survivor score as float64: numbers as they are, timestamps and ISO-8601 strings (a WARC-Date) as seconds."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = _iso_seconds(column)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("s")).cast(pa.int64())
    return column.cast(pa.float64())


def _iso_seconds(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``2024-05-20T10:11:12Z`` (fractions and a zone suffix allowed) -> timestamp[s]; unparsable -> null."""
    head = pc.utf8_slice_codeunits(column.cast(pa.string()), 0, 19)
    return pc.strptime(head, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)


def doc_table(
    t: pa.Table,
    g: np.ndarray,
    id_column: str,
    score_column: str | None,
    protected: bool,
    text_column: str = "text",
) -> pa.Table:
    """Per-document facts every pass keeps for one batch: global id, id, survivor score, reference or not, and the
    text's length in characters (the verify pass sizes its partitions with it, before reading any text).

    Row ``r`` of a file's doc table is the file's row ``r``, so a pass looks documents up by row number.
    """
    score = _score(t.column(score_column)) if score_column else pa.nulls(t.num_rows, pa.float64())
    chars = pc.fill_null(pc.utf8_length(t.column(text_column).cast(pa.string())), 0).cast(pa.int64())
    return pa.table(
        {
            "gid": pa.array(g, pa.uint64()),
            "id": t.column(id_column).cast(pa.string()),
            "score": score,
            "protected": pa.array(np.full(t.num_rows, protected)),
            "chars": chars,
        },
        schema=DOC_TABLE_SCHEMA,
    )


#: a pair of documents (``a < b``), as every pass after the buckets writes them
PAIR_SCHEMA = pa.schema([("a", pa.uint64()), ("b", pa.uint64())])


def split_gid(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = g.astype(np.uint64)
    return (g >> np.uint64(ROW_BITS)).astype(np.int64), (g & np.uint64(2**ROW_BITS - 1)).astype(np.int64)


def read_rows(path: str, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """Selected rows (sorted row numbers) of a Parquet file, reading only the row groups that hold them."""
    pf = parquet_file(path)
    rows = np.sort(rows)
    parts = []
    start = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
            t = pf.read_row_group(rg, columns=columns)
            parts.append(t.take(pa.array(rows[lo:hi] - start)))
        start += n
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(parts)


def part_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """Hash partition (int64) of uint64 keys; keys are mixed first, since gids are structured numbers."""
    return (mix64(keys.astype(np.uint64)) % np.uint64(partitions)).astype(np.int64)


def file_groups(files: list[InputFile], tasks: int) -> list[list[InputFile]]:
    """``files`` cut into at most ``tasks`` contiguous groups of nearly equal size (one pass task per group)."""
    n = max(1, min(tasks, len(files)))
    bounds = np.linspace(0, len(files), n + 1).round().astype(int)
    return [files[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def group_of_files(groups: list[list[InputFile]]) -> np.ndarray:
    """int64[file index] -> group number."""
    out = np.zeros(sum(len(g) for g in groups), np.int64)
    for gi, g in enumerate(groups):
        for f in g:
            out[f.index] = gi
    return out


def read_folder(folder: str, columns: list[str] | None = None) -> pa.Table | None:
    """Every Parquet file of ``folder`` (a partition written by several tasks), concatenated; None when empty."""
    tables = [
        read_table(o.path, columns=columns) for o in Folder(folder).list(suffix=".parquet", recursive=False)
    ]
    return pa.concat_tables(tables) if tables else None


def unit(i: int) -> str:
    return f"{i:05d}"


def write_parquet_atomic(table: pa.Table, path: str) -> None:
    """``table`` as the zstd Parquet file ``path``, whole or not at all (:meth:`Folder.write_table`)."""
    folder, name = split(path)
    folder.write_table(name, table, compression="zstd")


class PartitionWriter:
    """One Parquet file per partition, ``<root>/<partition>/<name>.parquet``, fed in pieces and committed at once.

    A task's rows are spread over R partitions as they come; pieces are buffered up to ``flush_rows`` rows in all,
    then appended as row groups, so a task holds one buffer however much it writes.  ``close`` renames every file
    into place (an empty partition gets an empty file, so a reader finds all M files of each partition).
    """

    def __init__(self, root: str, name: str, partitions: int, schema: pa.Schema, flush_rows: int = 1_000_000):
        self.folder = Folder(root)
        self.names = [f"{unit(p)}/{name}.parquet" for p in range(partitions)]
        self.paths = [self.folder.uri(n) for n in self.names]
        self.staged: list[Staged | None] = [None] * partitions
        self.schema, self.flush_rows = schema, flush_rows
        self.buffers: list[list[pa.Table]] = [[] for _ in range(partitions)]
        self.writers: list[pq.ParquetWriter | None] = [None] * partitions
        self.buffered = 0

    def add(self, partition: int, table: pa.Table) -> None:
        if table.num_rows:
            self.buffers[partition].append(table)
            self.buffered += table.num_rows
            if self.buffered >= self.flush_rows:
                self.flush()

    def add_split(self, table: pa.Table, part: np.ndarray) -> None:
        """Rows of ``table`` to partitions ``part`` (int64 per row)."""
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(len(self.paths) + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            self.add(p, table.take(pa.array(order[bounds[p] : bounds[p + 1]])))

    def _writer(self, p: int) -> pq.ParquetWriter:
        if self.writers[p] is None:
            staged = self.staged[p] = self.folder.stage(self.names[p])
            self.writers[p] = pq.ParquetWriter(staged.tmp, self.schema, compression="zstd")
        return self.writers[p]  # type: ignore[return-value]

    def flush(self) -> None:
        for p, parts in enumerate(self.buffers):
            if parts:
                self._writer(p).write_table(pa.concat_tables(parts).cast(self.schema))
                self.buffers[p] = []
        self.buffered = 0

    def close(self) -> None:
        self.flush()
        for p, w in enumerate(self.writers):
            if w is not None:
                w.close()
                self.staged[p].commit()  # type: ignore[union-attr]


def _marker_name(stage: str, unit: str) -> str:
    return f"_done/{stage}/{unit}.json"


def marker(work: str, stage: str, unit: str) -> str:
    return storage.join(work, _marker_name(stage, unit))


def is_done(work: str, stage: str, unit: str) -> bool:
    return Folder(work).exists(_marker_name(stage, unit))


def mark_done(work: str, stage: str, unit: str, info: dict[str, Any] | None = None) -> None:
    """A unit's marker, renamed into place after its outputs.  No fsync (the outputs have none either): a machine
    crash may lose a marker, and the unit then simply runs again; a pass has hundreds of units."""
    Folder(work).write_bytes(_marker_name(stage, unit), json.dumps(info or {}).encode(), durable=False)


def read_marker(work: str, stage: str, unit: str) -> dict[str, Any]:
    return Folder(work).read_json(_marker_name(stage, unit))
