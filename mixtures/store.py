"""Parquet reads and writes of a mixture build on any storage (local disk or ``s3://`` / ``gs://``).

The build's tasks name files by location; these helpers read them with pyarrow through the filesystem
:func:`pipelines.core.storage.resolve` gives (DuckDB's own readers would need its httpfs extension, a run-time
download) and write them through :class:`pipelines.core.folder.Folder`, whose writes are atomic everywhere.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core import storage
from pipelines.core.folder import Folder, ObjectInfo, file_info, split

__all__ = [
    "file_info",
    "parquet_file",
    "read_schema",
    "read_table",
    "remove_tree",
    "write_table",
    "ObjectInfo",
]


def read_table(uri: str, columns: Sequence[str] | None = None) -> pa.Table:
    """One Parquet file, local or on an object store (``columns``: only those)."""
    if not storage.is_uri(uri):
        return pq.read_table(uri, columns=columns)
    fs, path = storage.resolve(uri)
    return pq.read_table(path, columns=columns, filesystem=fs)


def read_schema(uri: str) -> pa.Schema:
    """The schema in one Parquet file's footer (one ranged read on an object store)."""
    if not storage.is_uri(uri):
        return pq.read_schema(uri)
    fs, path = storage.resolve(uri)
    return pq.read_schema(path, filesystem=fs)


def parquet_file(uri: str) -> pq.ParquetFile:
    """A :class:`pyarrow.parquet.ParquetFile` to stream batches from (closed with the object)."""
    if not storage.is_uri(uri):
        return pq.ParquetFile(uri)
    fs, path = storage.resolve(uri)
    return pq.ParquetFile(fs.open_input_file(path))


def write_table(uri: str, table: pa.Table, **options: Any) -> None:
    """``table`` as the Parquet file ``uri``, whole or not at all (:meth:`Folder.write_table`)."""
    folder, name = split(uri)
    folder.write_table(name, table, **options)


def remove_tree(folder: Folder) -> None:
    """Delete a folder and everything under it (a prefix on an object store); nothing when it is absent."""
    if not folder.remote:
        shutil.rmtree(folder.location, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        folder.fs.delete_dir(folder.root)
