"""Parquet reads and writes of a mixture build on any storage (local disk or ``s3://`` / ``gs://``).

The build's tasks name files by location; these helpers read them with pyarrow through the filesystem
:func:`pipelines.core.storage.resolve` gives (DuckDB's own readers would need its httpfs extension, a run-time
download) and write them through :class:`pipelines.core.folder.Folder`, whose writes are atomic everywhere; and
the run folder of a build and its commit (the rule is in :mod:`mixtures.build`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core import storage
from pipelines.core.folder import Folder, ObjectInfo, file_info, split

RUNS, MANIFEST = "runs", "manifest.json"  # on object stores: OUTPUT/mixtures/<stage>/runs/<run>/; the commit

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


def run_folder(output: str, stage: str, run: str) -> Folder:
    """Where build ``run`` writes before its commit (:mod:`mixtures.build`); other runs' leftovers go."""
    if storage.is_uri(output):
        return Folder(storage.join(output, "mixtures", stage, RUNS, run))
    mixtures = os.path.join(output, "mixtures")
    mine = os.path.join(mixtures, f".{stage}.tmp-{run}")
    for stale in glob.glob(os.path.join(mixtures, f".{glob.escape(stage)}.tmp-*")):
        if stale != mine:  # a build of other inputs killed while writing (one build per stage at a time)
            shutil.rmtree(stale, ignore_errors=True)
    return Folder(mine)


def commit_run(stage_dir: Folder, work: Folder, run: str, manifest: dict[str, Any]) -> None:
    """Make the build in ``work`` the stage's (the commit rule of :mod:`mixtures.build`)."""
    if stage_dir.remote:
        work.write_json(MANIFEST, manifest)  # the run's own record; the stage's manifest below is the commit
        stage_dir.write_json(MANIFEST, manifest)
        for name in stage_dir.child(RUNS).folders():
            if name != run:
                remove_tree(stage_dir.child(RUNS, name))
        return
    work.write_json(MANIFEST, manifest)
    final = stage_dir.location
    old = None
    if os.path.exists(final):
        old = final + f".old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(work.location, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)
