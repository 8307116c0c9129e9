"""The order in which a run processes its inputs: largest first.

A run's wall time is at least its longest input; started last, a big input leaves every other worker idle while it
finishes alone.  Started first, it overlaps with the small ones.  The order never changes the output (each input's
files are named from it), only when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pipelines.core import storage


def largest_first(paths: list[str]) -> list[str]:
    """``paths`` by size, largest first (ties by path).  Sizes come from the file system (a stat each) or one listing
    per object-store folder, never a request per object; a folder input (a code repository) counts its files."""
    sizes: dict[str, int] = {}
    for folder in sorted({storage.dirname(p) for p in paths if storage.is_uri(p)}):
        sizes.update({o.uri: o.size for o in storage.list_files(folder, recursive=False)})
    for p in paths:
        if not storage.is_uri(p):
            sizes[p] = _local_size(p)
    return sorted(paths, key=lambda p: (-sizes.get(p, 0), p))


def _local_size(path: str) -> int:
    try:
        if not os.path.isdir(path):
            return os.path.getsize(path)
        return sum(e.stat(follow_symlinks=False).st_size for e in _files(path))
    except OSError:  # unreadable or gone: processing it will say so; this is only the order
        return 0


def _files(folder: str) -> Iterator[os.DirEntry]:
    """Files under ``folder``, without following links; iterative, so 1,000-deep trees are no problem."""
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield entry
