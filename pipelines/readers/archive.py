"""Safe, in-memory reading of source trees: folders, ``.tar(.gz)``, ``.zip`` and gzipped single files.

Archives are never extracted to disk.  Why a module of its own: GitHub repositories and arXiv source bundles share the
same dangers — members with absolute paths or ``..`` (tar-slip), links pointing out of the tree, decompression bombs —
and each is answered here once: unsafe members are refused (reported as :class:`Refused`, the reader counts them), and
a tree that exceeds its member-count or byte caps raises :class:`ArchiveLimitError` (the runner records it).
"""

from __future__ import annotations

import gzip
import os
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from pipelines.readers.integrity import raise_if_truncated

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Limits:
    """Caps against bombs: per member, for the whole tree, and on the member count."""

    max_member_bytes: int = 20_000_000
    max_total_bytes: int = 500_000_000
    max_members: int = 100_000


@dataclass(frozen=True)
class Member:
    """A regular file of the tree: path relative to the tree root (POSIX), its bytes (``None`` if over the cap)."""

    path: str
    data: bytes | None
    size: int


@dataclass(frozen=True)
class Refused:
    """A member that is not read, and why (``archive:unsafe_path``, ``archive:link_out_of_tree``...)."""

    path: str
    reason: str


class ArchiveLimitError(Exception):
    """The tree is larger than the configured caps (a likely decompression bomb); reading stops here."""


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def safe_relpath(name: str) -> str | None:
    """The normalised relative path of an archive member, or ``None`` when it is absolute or climbs out (``..``)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        return None
    return "" if norm == "." else norm


def _read_capped(fileobj, cap: int) -> bytes | None:
    """Read at most ``cap`` bytes; ``None`` when there is more (the real size may be a lie in a bomb's header)."""
    data = fileobj.read(cap + 1)
    return None if len(data) > cap else data


class _Budget:
    def __init__(self, limits: Limits, where: str):
        self.limits, self.where, self.members, self.bytes = limits, where, 0, 0

    def add(self, n_bytes: int) -> None:
        self.members += 1
        self.bytes += n_bytes
        if self.members > self.limits.max_members:
            raise ArchiveLimitError(
                f"{self.where}: more than {self.limits.max_members} members; raise reader.max_members if genuine"
            )
        if self.bytes > self.limits.max_total_bytes:
            raise ArchiveLimitError(
                f"{self.where}: more than {self.limits.max_total_bytes} bytes uncompressed (bomb?); "
                "raise reader.max_total_bytes if genuine"
            )


def iter_tree(path: str, limits: Limits | None = None) -> Iterator[Member | Refused]:
    """Regular files of a folder or an archive, in a stable (sorted) order."""
    limits = limits or Limits()
    if os.path.isdir(path):
        yield from _iter_dir(path, limits)
    elif path.lower().endswith(".zip"):
        yield from _iter_zip(path, limits)
    elif path.lower().endswith((".tar.gz", ".tgz", ".tar")):
        yield from _iter_tar(path, limits)
    elif path.lower().endswith(".gz"):
        yield from _iter_gzip_or_tar(path, limits)
    else:
        raise ValueError(f"{path}: not a folder or a .tar.gz/.tgz/.tar/.zip/.gz archive")


def _iter_dir(root: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, root)
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.commonpath([real_root, target]) != real_root:
                    yield Refused(rel, "archive:link_out_of_tree")
                    continue
            if not os.path.isfile(full):
                yield Refused(rel, "archive:not_a_file")
                continue
            size = os.path.getsize(full)
            budget.add(min(size, limits.max_member_bytes + 1))
            if size > limits.max_member_bytes:
                yield Member(rel, None, size)
                continue
            with open(full, "rb") as f:
                yield Member(rel, f.read(), size)


def _iter_tar(path: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, path)
    with tarfile.open(path, "r:*") as tar:
        members = []
        for info in tar:  # streaming: a truncated gzip raises here, after the members read so far
            members.append(info)
            if len(members) > limits.max_members:
                raise ArchiveLimitError(f"{path}: more than {limits.max_members} members")
        names = {safe_relpath(m.name) for m in members if m.isfile()}
        for info in sorted(members, key=lambda m: m.name):
            rel = safe_relpath(info.name)
            if rel is None:
                yield Refused(info.name, "archive:unsafe_path")
                continue
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                target = (
                    info.linkname if info.islnk() else posixpath.join(posixpath.dirname(rel), info.linkname)
                )
                if safe_relpath(target) is None or info.linkname.startswith("/"):
                    yield Refused(rel, "archive:link_out_of_tree")
                elif safe_relpath(target) not in names:
                    yield Refused(rel, "archive:dangling_link")
                else:
                    yield Refused(rel, "archive:link")  # the target itself is read as a member
                continue
            if not info.isfile():
                yield Refused(rel, "archive:not_a_file")
                continue
            budget.add(min(info.size, limits.max_member_bytes + 1))
            f = tar.extractfile(info)
            data = None if f is None else _read_capped(f, limits.max_member_bytes)
            yield Member(rel, data, info.size)
    raise_if_truncated(path)  # a cut .tar.gz can still hand out whole members: say the archive is damaged


def _iter_zip(path: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveLimitError(f"{path}: {len(infos)} members, more than {limits.max_members}")
        for info in sorted(infos, key=lambda i: i.filename):
            rel = safe_relpath(info.filename)
            if rel is None:
                yield Refused(info.filename, "archive:unsafe_path")
                continue
            if info.is_dir():
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                yield Refused(rel, "archive:link")
                continue
            with zf.open(info) as f:  # the header's size can lie: count what is really inflated
                data = _read_capped(f, limits.max_member_bytes)
            budget.add(len(data) if data is not None else limits.max_member_bytes + 1)
            yield Member(rel, data, info.file_size if data is None else len(data))


def _iter_gzip_or_tar(path: str, limits: Limits) -> Iterator[Member | Refused]:
    """arXiv serves ``.gz`` that is either a tarball or a single gzipped .tex: look inside to tell."""
    if tarfile.is_tarfile(path):
        yield from _iter_tar(path, limits)
        return
    with gzip.open(path, "rb") as f:
        data = _read_capped(f, limits.max_member_bytes)
    name = os.path.basename(path)[: -len(".gz")] or "main"
    if not name.lower().endswith(".tex"):  # arXiv's gzipped single files are TeX sources named by their id
        name += ".tex"
    if data is None:
        yield Member(name, None, limits.max_member_bytes + 1)
    else:
        yield Member(name, data, len(data))
