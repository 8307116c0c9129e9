"""Safe, in-memory reading of source trees: folders, ``.tar(.gz)``, ``.zip`` and gzipped single files.

Archives are never extracted to disk.  Why a module of its own: GitHub repositories and arXiv source bundles share the
same dangers — members with absolute paths or ``..`` (tar-slip), links pointing out of the tree, decompression bombs —
and each is answered here once: unsafe members are refused (reported as :class:`Refused`, the reader counts them), and
a tree that exceeds its member-count or byte caps raises :class:`ArchiveLimitError` (the runner records it).

Damage stays local: a corrupt or encrypted member is one :class:`Refused` (``read_error:<why>``), an archive cut short
keeps the members read before the cut and adds ``read_error:truncated_archive``, folders nested deeper than
``Limits.max_depth`` are refused (``archive:too_deep``).  File names that are not valid UTF-8 (any bytes are legal
on POSIX and in tar) are given in a surrogate-free form (:func:`printable_path`), so they can be written to Parquet.
Errors of the environment (permission denied, I/O errors) are not caught here: they fail the input, and a rerun
retries it.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.readers.integrity import gzip_truncation

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
#: what a damaged archive raises (``BadGzipFile`` is an ``OSError`` but says the data is bad, not the disk)
DATA_ERRORS = (
    EOFError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    NotImplementedError,  # zip compression methods Python cannot inflate
)
TRUNCATED = "read_error:truncated_archive"


@dataclass(frozen=True)
class Limits:
    """Caps against bombs: per member, for the whole tree, and on the member count."""

    max_member_bytes: int = 20_000_000
    max_total_bytes: int = 500_000_000
    max_members: int = 100_000
    #: files under more folders than this are not read (``archive:too_deep``): real trees stay far below it, while
    #: a 1,000-deep folder chain would hit the interpreter's recursion and the OS's path-length limits
    max_depth: int = 64


@dataclass(frozen=True)
class Member:
    """A regular file of the tree: path relative to the tree root (POSIX), its bytes (``None`` if over the cap).

    ``escaped`` says the stored name was not valid UTF-8 and ``path`` is its :func:`printable_path` form."""

    path: str
    data: bytes | None
    size: int
    escaped: bool = False


@dataclass(frozen=True)
class Refused:
    """A member that is not read, and why (``archive:unsafe_path``, ``archive:link_out_of_tree``...)."""

    path: str
    reason: str


class ArchiveLimitError(Exception):
    """The tree is larger than the configured caps (a likely decompression bomb); reading stops here."""


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def printable_path(name: str) -> tuple[str, bool]:
    """``name`` as text that any UTF-8 writer accepts, and whether it had to change.

    Names read from disk or tar carry their undecodable bytes as lone surrogates (Python's ``surrogateescape``);
    Parquet and JSON writers refuse those.  Each such byte becomes ``\\xNN``, so the form is stable across runs and
    still tells the user which file it was."""
    try:
        name.encode("utf-8")
        return name, False
    except UnicodeEncodeError:
        pass
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that no byte decoding produced
        return name.encode("utf-8", "backslashreplace").decode("utf-8"), True
    return raw.decode("utf-8", "backslashreplace"), True


def _damage(exc: BaseException) -> str:
    """The reason for a member whose bytes could not be read (``zlib.error`` is named in full)."""
    return "read_error:" + ("zlib.error" if isinstance(exc, zlib.error) else type(exc).__name__)


def _depth(rel: str) -> int:
    """Folders above a member (``a/b/c.py`` → 2)."""
    return rel.count("/")


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
    """Regular files of a folder or an archive, in a stable (sorted) order, each path once.

    A path seen before is refused ``archive:duplicate_name`` (the first is kept): zip and tar may hold one name
    twice, and a non-UTF-8 name can print like a real one, while ids built from paths must stay unique."""
    limits = limits or Limits()
    if os.path.isdir(path):
        items = _iter_dir(path, limits)
    elif path.lower().endswith(".zip"):
        items = _iter_zip(path, limits)
    elif path.lower().endswith((".tar.gz", ".tgz", ".tar")):
        items = _iter_tar(path, limits)
    elif path.lower().endswith(".gz"):
        items = _iter_gzip_or_tar(path, limits)
    else:
        raise ValueError(f"{path}: not a folder or a .tar.gz/.tgz/.tar/.zip/.gz archive")
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Member) or item.reason.startswith("read_error:"):
            if item.path and item.path in seen:
                yield Refused(item.path, "archive:duplicate_name")
                continue
            seen.add(item.path)
        yield item


def _raise(exc: OSError) -> None:
    """``os.walk`` hides unreadable folders by default: an unreadable folder must fail the input instead."""
    raise exc


def _iter_dir(root: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, root)
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if d != ".git"]
        here = os.path.relpath(dirpath, root).replace(os.sep, "/")
        level = 0 if here == "." else _depth(here) + 1  # folders above the files listed here
        if dirnames and level + 1 > limits.max_depth:
            for d in dirnames:  # not entered: one record per folder cut off
                yield Refused(printable_path(d if here == "." else f"{here}/{d}")[0], "archive:too_deep")
            dirnames[:] = []
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel, escaped = printable_path(os.path.relpath(full, root).replace(os.sep, "/"))
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
                yield Member(rel, None, size, escaped)
                continue
            with open(full, "rb") as f:
                yield Member(rel, f.read(), size, escaped)


def _list_tar(tar: tarfile.TarFile, path: str, limits: Limits) -> tuple[list[tarfile.TarInfo], bool]:
    """The members' headers, and whether the listing stopped at damage (those before it are kept)."""
    members: list[tarfile.TarInfo] = []
    try:
        for info in tar:  # streaming: a cut or corrupt archive raises here, after the members listed so far
            members.append(info)
            if len(members) > limits.max_members:
                raise ArchiveLimitError(f"{path}: more than {limits.max_members} members")
    except DATA_ERRORS:
        return members, True
    return members, False


def _named(
    members: Iterable[Any], name: Callable[[Any], str], is_dir: Callable[[Any], bool], limits: Limits
) -> Iterator[tuple[Any, str, str, bool] | Refused]:
    """An archive's members in name order as (member, safe relative path, printable name, whether it was escaped),
    or the refusal of one whose path leaves the tree or goes too deep; folder entries are skipped."""
    for info in sorted(members, key=name):
        rel = safe_relpath(name(info))
        if rel is None:
            yield Refused(printable_path(name(info))[0], "archive:unsafe_path")
            continue
        if is_dir(info):
            continue
        shown, escaped = printable_path(rel)
        if _depth(rel) > limits.max_depth:
            yield Refused(shown, "archive:too_deep")
            continue
        yield info, rel, shown, escaped


def _iter_tar(path: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, path)
    with tarfile.open(path, "r:*") as tar:
        members, damaged = _list_tar(tar, path, limits)
        names = {safe_relpath(m.name) for m in members if m.isfile()}
        for item in _named(members, lambda m: m.name, tarfile.TarInfo.isdir, limits):
            if isinstance(item, Refused):
                yield item
                continue
            info, rel, shown, escaped = item
            if info.issym() or info.islnk():
                target = (
                    info.linkname if info.islnk() else posixpath.join(posixpath.dirname(rel), info.linkname)
                )
                if safe_relpath(target) is None or info.linkname.startswith("/"):
                    yield Refused(shown, "archive:link_out_of_tree")
                elif safe_relpath(target) not in names:
                    yield Refused(shown, "archive:dangling_link")
                else:
                    yield Refused(shown, "archive:link")  # the target itself is read as a member
                continue
            if not info.isfile():
                yield Refused(shown, "archive:not_a_file")
                continue
            budget.add(min(info.size, limits.max_member_bytes + 1))
            try:
                f = tar.extractfile(info)
                data = None if f is None else _read_capped(f, limits.max_member_bytes)
            except DATA_ERRORS as exc:  # this member's bytes are damaged (or cut off): the others still count
                yield Refused(shown, _damage(exc))
                continue
            yield Member(shown, data, info.size, escaped)
    # a cut .tar.gz can still hand out whole members: say the archive is damaged
    problem = None if damaged or not path.lower().endswith((".gz", ".tgz")) else gzip_truncation(path)
    if damaged or (problem and "ends inside" in problem):
        yield Refused("", TRUNCATED)
    elif problem:
        yield Refused("", "read_error:corrupt_archive")


def _iter_zip(path: str, limits: Limits) -> Iterator[Member | Refused]:
    budget = _Budget(limits, path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveLimitError(f"{path}: {len(infos)} members, more than {limits.max_members}")
        for item in _named(infos, lambda i: i.filename, zipfile.ZipInfo.is_dir, limits):
            if isinstance(item, Refused):
                yield item
                continue
            info, _, shown, escaped = item
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                yield Refused(shown, "archive:link")
                continue
            if info.flag_bits & 0x1:  # encrypted: no password to give, and not a reason to lose the others
                yield Refused(shown, "read_error:encrypted")
                continue
            try:
                with zf.open(info) as f:  # the header's size can lie: count what is really inflated
                    data = _read_capped(f, limits.max_member_bytes)
            except DATA_ERRORS as exc:  # a bad CRC, a corrupt deflate stream, a broken local header
                yield Refused(shown, _damage(exc))
                continue
            budget.add(len(data) if data is not None else limits.max_member_bytes + 1)
            yield Member(shown, data, info.file_size if data is None else len(data), escaped)


def _iter_gzip_or_tar(path: str, limits: Limits) -> Iterator[Member | Refused]:
    """arXiv serves ``.gz`` that is either a tarball or a single gzipped .tex: look inside to tell."""
    try:
        is_tar = tarfile.is_tarfile(path)
    except DATA_ERRORS:  # cut inside the first block: not readable as a tarball, try it as one gzipped file
        is_tar = False
    if is_tar:
        yield from _iter_tar(path, limits)
        return
    name = printable_path(os.path.basename(path)[: -len(".gz")])[0] or "main"
    if not name.lower().endswith(".tex"):  # arXiv's gzipped single files are TeX sources named by their id
        name += ".tex"
    try:
        with gzip.open(path, "rb") as f:
            data = _read_capped(f, limits.max_member_bytes)
    except DATA_ERRORS as exc:  # a cut or corrupt single file: half a paper is not a paper
        yield Refused(name, TRUNCATED if isinstance(exc, EOFError) else _damage(exc))
        return
    if data is None:
        yield Member(name, None, limits.max_member_bytes + 1)
    else:
        yield Member(name, data, len(data))
