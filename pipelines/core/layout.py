"""Output layout, atomic writes, completion markers and the run lock.

::

    OUTPUT/<source>/docs/<key>.parquet       kept documents of one input
    OUTPUT/<source>/rejected/<key>.parquet   rejected rows with `reason` and `rejected_by`
    OUTPUT/<source>/stats/<key>.json         per-input counts (read, kept, rejected by reason, per step)
    OUTPUT/<source>/_done/<key>.json         completion marker, written last
    OUTPUT/<source>/summary.json             merged stats of every completed input
    OUTPUT/<source>/_quarantine/             damaged Parquet files found by a later run (their inputs redone)
    OUTPUT/<source>/.lock                    held (flock) while a run writes here

``key`` is a hash of the input's absolute path (of its full URI on object storage), so names never depend on run
order or worker count, and a rerun that finds the marker skips the input: its files are left byte-for-byte as they
were.  Every file goes through :class:`pipelines.core.folder.Folder` (``SourceLayout.folder``), so OUTPUT may be an
``s3://`` / ``gs://`` URI: objects are then written once under their final names (no temporary name, no rename),
the marker last, and the lock is an advisory lock object (``pipelines.core.locks``).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipelines.core import storage
from pipelines.core.folder import Folder, split
from pipelines.core.folder import tmp_name as tmp_name  # re-exported: mixtures and dedup import it from here
from pipelines.core.sql import quote, string_list

log = logging.getLogger(__name__)


def path_bytes(path: str) -> bytes:
    """The bytes of a path as the file system holds them (``os.fsencode``, independent of the locale).

    A file name that is not valid UTF-8 reaches Python with its undecodable bytes as lone surrogates
    (``surrogateescape``); strict UTF-8 cannot encode those, so they are turned back into the original bytes.
    A valid UTF-8 path gives exactly its UTF-8 encoding.  (A lone surrogate that is not an escaped byte, which
    no file system listing produces, is kept through ``surrogatepass`` rather than failing.)"""
    try:
        return path.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return path.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return path.encode("utf-8", "surrogatepass")


def printable_path(path: str) -> str:
    """A path as valid Unicode for logs, JSON, Parquet and ids: unchanged when it is valid UTF-8, else each byte
    that is not valid UTF-8 is written ``\\xNN`` (``bad\\xffname.txt``); stable from run to run."""
    return storage.printable(path)


def input_key(path: str) -> str:
    """Stable name of an input: the first 16 hex digits of sha1(absolute path), or of the full URI (the same on
    every node) for an input on object storage.  The path is hashed as the bytes the file system holds
    (:func:`path_bytes`), so a name that is not valid UTF-8 has a key too, and every valid UTF-8 path keeps the
    key it always had."""
    return hashlib.sha1(path_bytes(storage.absolute(path))).hexdigest()[:16]


@dataclass(frozen=True)
class SourceLayout:
    root: str
    source: str

    @property
    def base(self) -> str:
        return storage.join(self.root, self.source)

    @cached_property
    def folder(self) -> Folder:
        """``OUTPUT/<source>`` as a :class:`Folder` (names below are relative to it: ``docs/<key>.parquet``)."""
        return Folder(self.base)

    def dir(self, kind: str) -> str:
        return storage.join(self.base, kind)

    def path(self, kind: str, key: str, ext: str) -> str:
        return storage.join(self.base, kind, f"{key}.{ext}")

    def done_path(self, key: str) -> str:
        return self.path("_done", key, "json")

    @staticmethod
    def name(kind: str, key: str, ext: str) -> str:
        """The name of ``path(kind, key, ext)`` relative to :attr:`folder`."""
        return f"{kind}/{key}.{ext}"

    def is_done(self, key: str) -> bool:
        return self.folder.exists(self.name("_done", key, "json"))

    def make_dirs(self) -> None:
        """The local folders of a run (object stores have none to create)."""
        for kind in ("docs", "rejected", "stats", "_done"):
            self.folder.makedirs(kind)


def write_json_atomic(path: str, obj: Any) -> None:
    """``obj`` as JSON at ``path``, whole or not at all (:meth:`Folder.write_json`)."""
    folder, name = split(path)
    folder.write_json(name, obj)


def read_json(path: str, missing: str | None = None) -> Any:
    """The JSON at ``path``; when it is absent, ``FileNotFoundError`` with ``missing`` (say how to make it)."""
    folder, name = split(path)
    try:
        return folder.read_json(name)
    except FileNotFoundError:
        if missing is None:
            raise
        raise FileNotFoundError(missing) from None


def clean_tmp_files(folder: str) -> int:
    """Remove temporary files that a killed run left behind (they are never read)."""
    return Folder(folder).clean_tmp()


#: the 4 bytes that open and close every Parquet file
PARQUET_MAGIC = b"PAR1"


def parquet_problem(path: str, size: int | None = None) -> str | None:
    """Why the Parquet file ``path`` cannot be read, or None when its ends are sound: header and footer magic and a
    footer length that fits (a file cut by a killed copy, a full disk or a crashed host fails this).  Reads 12 bytes
    locally; on object storage only ``size`` from a listing is judged (objects are uploaded whole).

    Environment errors (EIO, permissions) propagate: they say nothing about the file."""
    folder, name = split(path)
    if folder.remote:  # an object is uploaded whole: its listed size is all there is to judge
        size = folder.size(name) if size is None else size
        return None if size >= 12 else f"{size} bytes, shorter than any Parquet file"
    try:
        with folder.open_input_file(name) as f:
            size = f.seek(0, os.SEEK_END)
            if size < 12:
                return f"{size} bytes, shorter than any Parquet file"
            f.seek(0)
            if f.read(4) != PARQUET_MAGIC:
                return "no Parquet header"
            f.seek(size - 8)
            tail = f.read(8)
    except FileNotFoundError:
        return "missing"
    if tail[4:] != PARQUET_MAGIC:
        return f"no Parquet footer ({size:,} bytes: truncated?)"
    if int.from_bytes(tail[:4], "little") > size - 12:
        return "footer length exceeds the file (truncated?)"
    return None


def readable_parquet(paths: list[str]) -> list[str]:
    """``paths`` without the files whose Parquet ends are broken; each one left out is logged at WARNING by name, so
    a query or a mixture still runs over the rest and the user learns which file to look at."""
    good = []
    for path in paths:
        problem = parquet_problem(path)
        if problem:
            log.warning("skipping unreadable Parquet file %s: %s", path, problem)
        else:
            good.append(path)
    return good


def quarantine_damaged(layout: SourceLayout, keys: list[str]) -> list[str]:
    """Check the docs/ and rejected/ files of completed inputs (``keys``); each damaged or missing one is moved to
    ``_quarantine/`` (named in a WARNING) and its input's marker removed, so this run redoes it.  Returns the keys
    to redo.  Local files cost a 12-byte read each; on object storage one listing per folder."""
    folder = layout.folder
    # on object storage one listing per folder gives every size (parquet_problem judges sizes only there)
    sizes = {o.path: o.size for o in folder.list("*/*.parquet")} if folder.remote else None
    redo = []
    for key in keys:
        problems = []
        for kind in ("docs", "rejected"):
            path = layout.path(kind, key, "parquet")
            if sizes is None:
                problem = parquet_problem(path)
            else:
                problem = "missing" if path not in sizes else parquet_problem(path, sizes[path])
            if problem:
                problems.append((kind, path, problem))
        if not problems:
            continue
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for kind, path, problem in problems:
            moved = f"_quarantine/{kind}-{key}-{stamp}.parquet"
            if problem != "missing":  # a rename locally; a server-side copy, then a delete, on object storage
                folder.move(layout.name(kind, key, "parquet"), moved)
            log.warning(
                "%s is damaged (%s): %s; its input is redone",
                path,
                problem,
                f"moved to {folder.uri(moved)}" if problem != "missing" else "nothing to move",
            )
        folder.remove(layout.name("_done", key, "json"))
        redo.append(key)
    return redo


def parquet_files_sql(*patterns: str) -> str | None:
    """The argument of DuckDB's ``read_parquet`` for the files matching the glob ``patterns``, leaving out (with a
    WARNING naming each) files whose Parquet ends are broken, so one truncated file does not fail every view,
    mixture or report; None when no readable file matches.  The patterns themselves when every file is sound."""
    files = [f for p in patterns for f in sorted(glob.glob(p, recursive=True))]
    good = readable_parquet(files)
    if not good:
        return None
    if len(good) == len(files):
        used = [p for p in patterns if glob.glob(p, recursive=True)]
        return quote(used[0]) if len(used) == 1 else string_list(used)
    return string_list(good)
