"""The docs files a corpus stage works on, listed once with their sizes and mtimes, and the fingerprint of a listing.

A stage that resumes after a kill works on the listing recorded before it started (``InputFile`` keeps the size and
mtime listed then), so whatever it names from the fingerprint (its work folder) stays the same while it rewrites
the files.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

from pipelines.core import storage
from pipelines.core.folder import Folder, ObjectInfo, file_info, listing_fingerprint, stat


@dataclass(frozen=True)
class InputFile:
    """A docs file of a stage, with its size and mtime as listed when the stage started (the fingerprint uses
    them, so a stage resuming its removal, which rewrites the file, still finds its work folder)."""

    index: int
    path: str
    protected: bool = False
    size: int = -1
    mtime_ns: int = -1

    @property
    def key(self) -> str:
        return f"{self.index:05d}"


def list_parquet(spec: str) -> list[str]:
    """Parquet files named by ``spec``: a file, a folder (recursively) or a glob; on an object store a file or a
    folder (one listing)."""
    if storage.is_uri(spec):
        return [o.path for o in _listed(spec)]
    if os.path.isfile(spec):
        return [os.path.abspath(spec)]
    if os.path.isdir(spec):
        found = glob.glob(os.path.join(spec, "**", "*.parquet"), recursive=True)
    else:
        found = glob.glob(spec, recursive=True)
    found = [p for p in found if not os.path.basename(p).startswith(".")]
    if not found:
        raise FileNotFoundError(f"{spec!r} holds no Parquet file (expected documents with columns id, text)")
    return sorted(os.path.abspath(p) for p in found)


def _listed(spec: str) -> list[ObjectInfo]:
    """The Parquet files of ``spec`` with their sizes and mtimes: from one listing on an object store."""
    if storage.is_uri(spec):
        one = file_info(spec)
        found = [one] if one is not None else Folder(spec).list(suffix=".parquet")
        if not found:
            raise FileNotFoundError(
                f"{spec!r} holds no Parquet file (expected documents with columns id, text)"
            )
        return found
    return [stat(p) for p in list_parquet(spec)]


def build_inputs(inputs: list[str], references: list[str] | None = None) -> list[InputFile]:
    """The files of ``inputs`` then those of ``references`` (protected: matched against, never removed from)."""
    files = [(o, False) for spec in inputs for o in _listed(spec)]
    files += [(o, True) for spec in (references or []) for o in _listed(spec)]
    seen: set[str] = set()
    out: list[InputFile] = []
    for info, protected in files:
        if info.path in seen:
            continue
        seen.add(info.path)
        out.append(InputFile(len(out), info.path, protected, info.size, info.mtime_ns))
    return out


def fingerprint(files: list[InputFile], settings: dict[str, Any]) -> str:
    """Names a work folder or a state: same inputs (path, size, mtime) and settings → same name → resumable.
    :func:`pipelines.core.folder.listing_fingerprint` of the listing (the files are never read)."""
    rows = []
    for f in files:
        size, mtime = f.size, f.mtime_ns
        if size < 0:
            info = stat(f.path)
            size, mtime = info.size, info.mtime_ns
        rows.append((f.path, size, mtime, f.protected))
    return listing_fingerprint(rows, settings)
