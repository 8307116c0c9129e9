"""Output layout, atomic writes, completion markers and the run lock.

::

    OUTPUT/<source>/docs/<key>.parquet       kept documents of one input
    OUTPUT/<source>/rejected/<key>.parquet   rejected rows with `reason` and `rejected_by`
    OUTPUT/<source>/stats/<key>.json         per-input counts (read, kept, rejected by reason, per step)
    OUTPUT/<source>/_done/<key>.json         completion marker, written last
    OUTPUT/<source>/summary.json             merged stats of every completed input
    OUTPUT/<source>/.lock                    held (flock) while a run writes here

``key`` is a hash of the input's absolute path (of its full URI on object storage), so names never depend on run
order or worker count, and a rerun that finds the marker skips the input: its files are left byte-for-byte as they
were.  OUTPUT may be an ``s3://`` / ``gs://`` URI (``pipelines.core.storage``): objects are then written once under their
final names (no temporary name, no rename), the marker last, and the lock is an advisory lock object
(``pipelines.core.locks``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import Any

from pipelines.core import storage


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

    def dir(self, kind: str) -> str:
        return storage.join(self.base, kind)

    def path(self, kind: str, key: str, ext: str) -> str:
        return storage.join(self.base, kind, f"{key}.{ext}")

    def done_path(self, key: str) -> str:
        return self.path("_done", key, "json")

    def is_done(self, key: str) -> bool:
        if storage.is_uri(self.root):
            return storage.exists(self.done_path(key))
        return os.path.exists(self.done_path(key))

    def make_dirs(self) -> None:
        if storage.is_uri(self.root):  # object stores have no folders to create
            return
        for kind in ("docs", "rejected", "stats", "_done"):
            os.makedirs(self.dir(kind), exist_ok=True)


def tmp_name(final: str) -> str:
    """A temporary sibling of ``final`` (same folder, so the rename is atomic)."""
    d, b = os.path.split(final)
    return os.path.join(d, f".{b}.tmp-{uuid.uuid4().hex[:8]}")


def write_json_atomic(path: str, obj: Any) -> None:
    if storage.is_uri(path):  # one PUT: the object appears whole or not at all
        storage.write_json(path, obj)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(storage.json_bytes(obj))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def clean_tmp_files(folder: str) -> int:
    """Remove temporary files that a killed run left behind (they are never read)."""
    n = 0
    if storage.is_uri(folder):  # nothing is written under a temporary name on object storage
        return 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".") and ".tmp-" in name:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
                    n += 1
    return n


