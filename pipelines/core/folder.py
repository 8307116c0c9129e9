"""One storage object: a :class:`Folder` on any ``pyarrow.fs`` filesystem (local disk, shared disks, S3, GCS).

Callers name files relative to a folder and never ask where it lives: listing, reading, atomic writes and
fingerprints behave the same on every filesystem.  Object stores are reached through ``pyarrow.fs`` (clients
cached per bucket and environment, :func:`pipelines.core.storage.resolve`); local disk through ``os`` (its
:attr:`Folder.fs` is pyarrow's ``LocalFileSystem`` for callers that want one), because ``LocalFileSystem`` cannot
name a file whose name is not valid UTF-8, and inputs may have such names.  The one place that knows the difference is :class:`Staged`,
the atomic write: locally a temporary sibling renamed into place (the rename is atomic), on an object store a local
temporary file uploaded in one C++ copy (an object appears whole when its upload completes; an exception mid-way
never completes it).  Nothing is left behind when the writer fails.

A fingerprint comes from a listing (path, size, modification time), never from the bytes, so it costs one listing
however large the files are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat as stat_module
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from pipelines.core import storage
from pipelines.core.discovery import hidden as is_hidden
from pipelines.core.discovery import pattern_regex
from pipelines.core.storage import ObjectInfo

__all__ = ["Folder", "ObjectInfo", "Staged", "file_info", "listing_fingerprint", "split", "stat", "tmp_name"]


def tmp_name(final: str) -> str:
    """A temporary sibling of the local file ``final`` (same folder, so the rename is atomic)."""
    d, b = os.path.split(final)
    return os.path.join(d, f".{b}.tmp-{uuid.uuid4().hex[:8]}")


def _encoded(text: str) -> bytes:
    """UTF-8, with the undecodable bytes of a file name (lone surrogates) written back as the bytes they were."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def listing_fingerprint(rows: Iterable[ObjectInfo | Sequence[Any]], extra: Any = None) -> str:
    """16 hex digits naming ``extra`` (settings, JSON) and a listing: one ``path|size|mtime_ns[|more...]`` line per
    row, in the order given.  The same listing and settings give the same name on every machine."""
    h = hashlib.sha1(json.dumps(extra if extra is not None else {}, sort_keys=True, default=str).encode())
    for row in rows:
        fields = (row.path, row.size, row.mtime_ns) if isinstance(row, ObjectInfo) else tuple(row)
        h.update(_encoded("|".join(str(f) for f in fields) + "\n"))
    return h.hexdigest()[:16]


def split(path: str) -> tuple[Folder, str]:
    """``(the folder holding path, its name)`` for a local path or a URI."""
    return Folder(storage.dirname(path)), storage.basename(path)


def file_info(path: str) -> ObjectInfo | None:
    """Size and modification time of one file or object; None when there is none (or it is a folder)."""
    folder, name = split(path)
    return folder.info(name)


def stat(path: str) -> ObjectInfo:
    """:func:`file_info`, also of a local folder (an input may be one: a code repository), raising
    ``FileNotFoundError`` when there is no such file, folder or object."""
    info = file_info(path)
    if info is not None:
        return info
    if not storage.is_uri(path) and os.path.isdir(path):
        st = os.stat(path)
        return ObjectInfo(path, st.st_size, st.st_mtime_ns)
    raise FileNotFoundError(f"{path}: no such file or object")


class Folder:
    """A folder named by a local path or an ``s3://`` / ``gs://`` URI.

    ``name`` arguments are relative (``"docs/abc.parquet"``); :meth:`uri` gives the full location a caller may
    pass on (local paths stay as given, relative or not).  Object stores have no folders: :meth:`makedirs` does
    nothing there and a folder exists once an object lies under it."""

    def __init__(self, location: str | os.PathLike[str]):
        location = os.fspath(location)
        self.remote = storage.is_uri(location)
        self.location = storage.normalize(location) if self.remote else location
        self.fs, self.root = storage.resolve(self.location)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled by location: a worker builds its own client from its own environment."""
        return Folder, (self.location,)

    def __repr__(self) -> str:
        return f"Folder({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Folder) and (self.remote, self.root) == (other.remote, other.root)

    def __hash__(self) -> int:
        return hash((self.remote, self.root))

    # -- names ---------------------------------------------------------------------------------------------------
    def uri(self, *parts: str) -> str:
        """The location of ``parts`` under this folder (the folder itself without parts)."""
        return storage.join(self.location, *parts) if parts else self.location

    def child(self, *parts: str) -> Folder:
        return Folder(self.uri(*parts))

    def _path(self, name: str = "") -> str:
        """``name`` as a path of :attr:`fs`."""
        if not name:
            return self.root
        return f"{self.root}/{name.strip('/')}" if self.remote else os.path.join(self.root, name)

    # -- queries -------------------------------------------------------------------------------------------------
    def info(self, name: str = "") -> ObjectInfo | None:
        """Size and mtime of the file ``name``; None when it is absent or a folder."""
        where = self.uri(name) if name else self.location
        if not self.remote:  # os, not pyarrow: LocalFileSystem cannot name a file whose name is not UTF-8
            try:
                st = os.stat(self._path(name))
            except (FileNotFoundError, NotADirectoryError):
                return None
            return ObjectInfo(where, st.st_size, st.st_mtime_ns) if stat_module.S_ISREG(st.st_mode) else None
        from pyarrow import fs

        i = self.fs.get_file_info(self._path(name))
        return (
            ObjectInfo(where, int(i.size or 0), int(i.mtime_ns or 0)) if i.type == fs.FileType.File else None
        )

    def exists(self, name: str = "") -> bool:
        if not self.remote:
            return os.path.exists(self._path(name))
        from pyarrow import fs

        return self.fs.get_file_info(self._path(name)).type != fs.FileType.NotFound

    def isfile(self, name: str = "") -> bool:
        return self.info(name) is not None

    def isdir(self, name: str = "") -> bool:
        if not self.remote:
            return os.path.isdir(self._path(name))
        from pyarrow import fs

        return self.fs.get_file_info(self._path(name)).type == fs.FileType.Directory

    def size(self, name: str = "") -> int:
        info = self.info(name)
        if info is None:
            raise FileNotFoundError(f"{self.uri(name)}: no such file or object")
        return info.size

    def _entries(self, recursive: bool) -> Iterator[tuple[str, bool, int, int]]:
        """``(relative path, is a file, size, mtime_ns)`` of what lies under this folder (files and folders)."""
        if not self.remote:
            stack = [""]
            while stack:
                rel_dir = stack.pop()
                try:
                    entries = list(os.scandir(os.path.join(self.root, rel_dir)))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for e in entries:
                    rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                    if e.is_dir():
                        yield rel, False, 0, 0
                        if recursive:
                            stack.append(rel)
                    elif e.is_file():
                        try:
                            st = e.stat()
                        except FileNotFoundError:  # renamed or removed since the scan (a writer's temp file)
                            continue
                        yield rel, True, st.st_size, st.st_mtime_ns
            return
        from pyarrow import fs

        try:
            infos = self.fs.get_file_info(
                fs.FileSelector(self.root, recursive=recursive, allow_not_found=True)
            )
        except (FileNotFoundError, NotADirectoryError):
            return
        for i in infos:
            rel = i.path[len(self.root) :].lstrip("/")
            yield rel, i.type == fs.FileType.File, int(i.size or 0), int(i.mtime_ns or 0)

    def list(
        self,
        pattern: str | None = None,
        suffix: str | None = None,
        recursive: bool = True,
        hidden: bool = False,
    ) -> list[ObjectInfo]:
        """Files under this folder, sorted by path; empty when the folder does not exist.

        ``pattern`` is a glob on the relative path (``**`` any number of folders, as ``glob(recursive=True)``),
        ``suffix`` an ending of the name.  Names starting with a dot (temporary files, locks) are left out unless
        ``hidden``."""
        regex = pattern_regex(pattern) if pattern else None
        out = []
        for rel, is_file, size, mtime in self._entries(recursive):
            if not is_file or (not hidden and is_hidden(rel)) or (suffix and not rel.endswith(suffix)):
                continue
            if regex is None or regex.match(rel):
                out.append(ObjectInfo(self.uri(rel), size, mtime))
        return sorted(out, key=lambda o: o.path)

    def folders(self) -> list[str]:
        """Names of the sub-folders directly under this folder (not hidden), sorted."""
        return sorted(
            rel for rel, is_file, _, _ in self._entries(False) if not is_file and not is_hidden(rel)
        )

    def fingerprint(
        self, names: Sequence[str] | None = None, pattern: str | None = None, extra: Any = None
    ) -> str:
        """:func:`listing_fingerprint` of the files ``names`` (a missing one counts as size and mtime -1) or of
        the files matching ``pattern`` (every file when neither is given)."""
        if names is None:
            return listing_fingerprint(self.list(pattern), extra)
        rows = [self.info(n) or ObjectInfo(self.uri(n), -1, -1) for n in names]
        return listing_fingerprint(rows, extra)

    # -- reading -------------------------------------------------------------------------------------------------
    def read_bytes(self, name: str) -> bytes:
        """The whole file (``FileNotFoundError`` when absent; other errors as the filesystem raises them)."""
        if not self.remote:
            with open(self._path(name), "rb") as f:
                return f.read()
        with self.fs.open_input_stream(self._path(name), compression=None) as f:
            return f.read()

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name).decode("utf-8"))

    def open_input(
        self,
        name: str,
        buffer_size: int = storage.STREAM_BUFFER,
        observe: Callable[[bytes], None] | None = None,
    ) -> storage.InputStream:
        """A buffered sequential binary stream (no decompression); errors of an object store become
        ``StorageError`` (the input fails and is retried, it is not recorded as unreadable)."""
        if not self.remote:  # a local error stays the OSError it is
            return storage.InputStream(
                self.uri(name), open(self._path(name), "rb", buffering=buffer_size), observe
            )
        try:
            raw = self.fs.open_input_stream(self._path(name), compression=None, buffer_size=buffer_size)
        except OSError as exc:
            raise storage.StorageError(f"cannot open {self.uri(name)}: {exc}") from exc
        return storage.InputStream(self.uri(name), raw, observe)

    def open_input_file(self, name: str) -> Any:
        """A seekable binary file (on an object store each unbuffered read is a ranged request)."""
        if not self.remote:
            return open(self._path(name), "rb")  # noqa: SIM115 - the caller closes it
        try:
            return self.fs.open_input_file(self._path(name))
        except OSError as exc:
            raise storage.StorageError(f"cannot open {self.uri(name)}: {exc}") from exc

    # -- writing -------------------------------------------------------------------------------------------------
    def makedirs(self, name: str = "") -> None:
        if not self.remote:
            os.makedirs(self._path(name), exist_ok=True)

    def stage(self, name: str) -> Staged:
        """A :class:`Staged` write of ``name`` (for writers that outlive one ``with`` block)."""
        return Staged(self, name)

    @contextlib.contextmanager
    def staged(self, name: str) -> Iterator[str]:
        """A local temporary path to write ``name`` to; committed under ``name`` when the block ends normally,
        removed when it raises."""
        staged = self.stage(name)
        try:
            yield staged.tmp
        except BaseException:
            staged.abort()
            raise
        staged.commit()

    @contextlib.contextmanager
    def open_output(self, name: str) -> Iterator[IO[bytes]]:
        """A binary file to write ``name`` through, committed atomically when the block ends normally."""
        with self.staged(name) as tmp, open(tmp, "wb") as f:
            yield f

    def write_bytes(self, name: str, data: bytes, durable: bool = True) -> None:
        """``name`` holds ``data``, whole or not at all: one PUT on an object store, a renamed temporary file
        locally (flushed to disk first when ``durable``)."""
        if self.remote:  # one request: readers see the old object or the new one
            with self.fs.open_output_stream(self._path(name)) as out:
                out.write(data)
            return
        with self.staged(name) as tmp, open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())

    def write_json(self, name: str, obj: Any, durable: bool = True) -> None:
        """``obj`` in Winnow's JSON encoding (:func:`storage.json_bytes`), written atomically."""
        self.write_bytes(name, storage.json_bytes(obj), durable)

    @contextlib.contextmanager
    def parquet_writer(self, name: str, schema: Any, **options: Any) -> Iterator[Any]:
        """A ``pyarrow.parquet.ParquetWriter`` for ``name`` that commits atomically when the block ends normally
        (an empty file when nothing was written) and leaves nothing behind when it raises."""
        import pyarrow.parquet as pq

        with self.staged(name) as tmp:
            writer = pq.ParquetWriter(tmp, schema, **options)
            try:
                yield writer
            finally:
                writer.close()

    def write_table(self, name: str, table: Any, **options: Any) -> None:
        """``table`` as the Parquet file ``name``, written atomically."""
        import pyarrow.parquet as pq

        with self.staged(name) as tmp:
            pq.write_table(table, tmp, **options)

    def remove(self, name: str) -> None:
        """Delete the file ``name``; nothing happens when it is absent."""
        with contextlib.suppress(FileNotFoundError):
            if self.remote:
                self.fs.delete_file(self._path(name))
            else:
                os.remove(self._path(name))

    def move(self, name: str, dest: str) -> None:
        """Move ``name`` to ``dest`` (both relative to this folder): a rename locally, a server-side copy then a
        delete on an object store."""
        if self.remote:
            self.fs.copy_file(self._path(name), self._path(dest))
            self.remove(name)
            return
        os.makedirs(os.path.dirname(self._path(dest)), exist_ok=True)
        os.replace(self._path(name), self._path(dest))

    def clean_tmp(self, name: str = "") -> int:
        """Remove the temporary files a killed writer left directly under ``name`` (never read); returns how many.
        Object stores hold none: nothing is written there under a temporary name."""
        folder, n = self.child(name) if name else self, 0
        if folder.remote:
            return 0
        for o in folder.list(recursive=False, hidden=True):
            base = storage.basename(o.path)
            if base.startswith(".") and ".tmp-" in base:
                folder.remove(base)
                n += 1
        return n

    @contextlib.contextmanager
    def local_copy(self, name: str) -> Iterator[str]:
        """A local path holding ``name``: the file itself on local disk, a temporary download from an object
        store (``<tmp>/<parent name>/<name>``, removed afterwards)."""
        if not self.remote:
            yield self.uri(name)
            return
        with storage.local_copy(self.uri(name)) as local:
            yield local


class Staged:
    """One file being written under a temporary local name (:attr:`tmp`), then committed under its final name in
    one step: a rename in the same folder locally, one upload on an object store."""

    def __init__(self, folder: Folder, name: str):
        self.folder, self.name = folder, name
        if folder.remote:
            fd, self.tmp = tempfile.mkstemp(prefix="winnow-", suffix="-" + storage.basename(name))
            os.close(fd)
        else:
            final = folder._path(name)
            os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
            self.tmp = tmp_name(final)

    def commit(self) -> None:
        if not self.folder.remote:
            os.replace(self.tmp, self.folder._path(self.name))
            return
        try:
            storage.upload_file(self.tmp, self.folder.uri(self.name))
        finally:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)
