"""The order in which a run processes its inputs: largest first.

A run's wall time is at least its longest input; started last, a big input leaves every other worker idle while it
finishes alone.  Started first, it overlaps with the small ones.  The order never changes the output (each input's
files are named from it), only when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pipelines.core.folder import split


def input_sizes(paths: list[str]) -> dict[str, int]:
    """Bytes of each input, from one listing per folder (never a request per object on a store); a folder input
    (a code repository) counts its files."""
    sizes: dict[str, int] = {}
    for folder in sorted({split(p)[0] for p in paths}, key=lambda f: f.location):
        sizes.update({o.path: o.size for o in folder.list(recursive=False, hidden=True)})
    for p in paths:
        if p not in sizes:  # a folder input, or one named differently from its listing
            sizes[p] = _local_size(p)
    return {p: sizes[p] for p in paths}


def largest_first(paths: list[str], sizes: dict[str, int] | None = None) -> list[str]:
    """``paths`` by size (``sizes``, default :func:`input_sizes`), largest first (ties by path)."""
    sizes = input_sizes(paths) if sizes is None else sizes
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
