"""Object storage (``s3://``, ``gs://``) through pyarrow's filesystems, beside plain local paths: the URI
primitives under :class:`pipelines.core.folder.Folder`, which is what code reads and writes through.  The per-URI
functions here (``exists``, ``list_files``, ``read_json``, ``write_json``, ...) remain for the runner and the
object-storage corpus stages until they move to ``Folder``.

A path is either a local path (``Folder`` handles it with ``os``) or a URI whose scheme is one
of :data:`SCHEMES`; URIs stay strings throughout the pipeline and are resolved to ``(pyarrow FileSystem, path)``
only where a byte is read or written.  Endpoint and credentials come from the usual environment, read by pyarrow:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` / ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``
(or ``AWS_ENDPOINT_URL_S3``) for S3-compatible stores (MinIO, Ceph, moto), ``AWS_DEFAULT_REGION``; Google's
application-default credentials for ``gs://``.

Object stores have no rename, so nothing here writes a temporary name: an object appears atomically when its
upload completes.  Larger outputs are built in a local temporary file and uploaded with one C++ copy
(:func:`upload_file`), so an exception mid-way never leaves a partial object behind (pyarrow's output streams
*complete* the upload when they are closed, even on error).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: URI schemes handled through pyarrow.fs (``gcs`` is pyarrow's alias of ``gs``)
SCHEMES = ("s3", "gs", "gcs")
_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
#: environment variables that configure the object-store clients (forwarded to Ray tasks, see runner)
ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
)
#: read buffer of sequential input streams (each unbuffered read of an S3 file is one HTTP range request)
STREAM_BUFFER = 8 << 20


class StorageError(OSError):
    """The object store failed (network, permissions), as opposed to an input that cannot be parsed: the input's
    task fails and leaves no marker, so the next run does it again."""


def is_uri(path: str | os.PathLike | None) -> bool:
    """True for ``scheme://...`` (object storage); local paths, relative or absolute, are False."""
    return isinstance(path, str) and _URI.match(path) is not None


def _split(uri: str) -> tuple[str, str]:
    m = _URI.match(uri)
    if not m:
        raise ValueError(f"not a URI: {uri!r}")
    scheme = m.group(1).lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{uri}: scheme {scheme}:// is not supported; use a local path, s3:// or gs://")
    rest = uri[m.end() :]
    if "?" in rest:
        raise ValueError(
            f"{uri}: options in the URI are not supported; set the endpoint and credentials in the "
            "environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)"
        )
    return scheme, rest.strip("/")


def split_uri(uri: str) -> tuple[str, str]:
    """``(scheme, path after the scheme without slashes at its ends)``; ValueError for an unsupported URI."""
    return _split(uri)


def normalize(path: str) -> str:
    """A URI without trailing slashes (local paths are returned unchanged)."""
    if not is_uri(path):
        return path
    scheme, rest = _split(path)
    return f"{scheme}://{rest}"


def join(base: str, *parts: str) -> str:
    if not is_uri(base):
        return os.path.join(base, *parts)
    return "/".join([normalize(base)] + [p.strip("/") for p in parts if p])


def basename(path: str) -> str:
    return normalize(path).rsplit("/", 1)[-1] if is_uri(path) else os.path.basename(path)


def dirname(path: str) -> str:
    return normalize(path).rsplit("/", 1)[0] if is_uri(path) else os.path.dirname(path)


def absolute(path: str) -> str:
    """``os.path.abspath`` for local paths; a URI is already absolute."""
    return normalize(path) if is_uri(path) else os.path.abspath(path)


def _env_snapshot() -> tuple[tuple[str, str | None], ...]:
    return tuple((k, os.environ.get(k)) for k in ENV_VARS)


@lru_cache(maxsize=32)
def _filesystem(scheme: str, bucket: str, env: tuple) -> Any:
    from pyarrow import fs

    # one client per bucket (S3 resolves the bucket's region once); the environment is part of the cache key so a
    # changed endpoint or credential is picked up
    filesystem, _ = fs.FileSystem.from_uri(f"{scheme}://{bucket}")
    return filesystem


@lru_cache(maxsize=1)
def _local_filesystem() -> Any:
    from pyarrow import fs

    return fs.LocalFileSystem()


def resolve(uri: str) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path inside it)`` for a URI, or ``(LocalFileSystem, absolute path)`` for a local
    path."""
    if not is_uri(uri):
        return _local_filesystem(), os.path.abspath(uri)
    scheme, rest = _split(uri)
    if not rest:
        raise ValueError(f"{uri}: name a bucket")
    return _filesystem(scheme, rest.split("/", 1)[0], _env_snapshot()), rest


def to_uri(scheme_of: str, fs_path: str) -> str:
    """The URI of ``fs_path`` (a path as the FileSystem returns it) with the scheme of ``scheme_of``."""
    return f"{_split(scheme_of)[0]}://{fs_path.strip('/')}"


# -- queries ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectInfo:
    """A listed file: its location (a local path or a URI, as the listed folder was named), size, mtime."""

    path: str
    size: int
    mtime_ns: int

    @property
    def uri(self) -> str:
        return self.path


def _info(uri: str) -> Any:
    fs, path = resolve(uri)
    return fs.get_file_info(path)


def exists(uri: str) -> bool:
    from pyarrow import fs

    return _info(uri).type != fs.FileType.NotFound


def isfile(uri: str) -> bool:
    from pyarrow import fs

    return _info(uri).type == fs.FileType.File


def isdir(uri: str) -> bool:
    from pyarrow import fs

    return _info(uri).type == fs.FileType.Directory


def list_files(uri: str, recursive: bool = True) -> list[ObjectInfo]:
    """Objects under the prefix ``uri`` (sorted; empty when it does not exist)."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    try:
        infos = filesystem.get_file_info(fs.FileSelector(path, recursive=recursive, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = [
        ObjectInfo(to_uri(uri, i.path), int(i.size or 0), int(i.mtime_ns or 0))
        for i in infos
        if i.type == fs.FileType.File
    ]
    return sorted(out, key=lambda o: o.uri)


# -- reading ----------------------------------------------------------------------------------------------------
class InputStream(io.RawIOBase):
    """A sequential, read-only file object over an object's bytes for readers (warcio, gzip, zipfile...).

    Errors of the store become :class:`StorageError` (so the runner fails the input instead of recording it as
    unreadable); ``observe`` sees every chunk read, in order (e.g. a gzip integrity check on the same pass)."""

    def __init__(self, uri: str, raw: Any, observe: Callable[[bytes], None] | None = None):
        self.uri, self._raw, self._observe, self._pos = uri, raw, observe, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        except OSError as exc:
            raise StorageError(f"reading {self.uri} failed: {exc}") from exc
        data = bytes(data)
        self._pos += len(data)
        if self._observe is not None and data:
            self._observe(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> None:
        """Read to the end (so ``observe`` has seen every byte)."""
        while self.read(STREAM_BUFFER):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


def open_input_stream(
    uri: str, buffer_size: int = STREAM_BUFFER, observe: Callable[[bytes], None] | None = None
) -> InputStream:
    """A buffered, sequential binary stream of the object's bytes (no decompression)."""
    filesystem, path = resolve(uri)
    try:
        raw = filesystem.open_input_stream(path, compression=None, buffer_size=buffer_size)
    except OSError as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc
    return InputStream(uri, raw, observe)


def read_bytes(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    with filesystem.open_input_stream(path, compression=None) as f:
        return f.read()


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri).decode("utf-8"))


def download_file(uri: str, local: str) -> None:
    from pyarrow import fs

    filesystem, path = resolve(uri)
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    fs.copy_files(path, local, source_filesystem=filesystem, destination_filesystem=fs.LocalFileSystem())


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """Download ``uri`` into a temporary folder as ``<tmp>/<parent name>/<name>`` (readers that name documents
    after the file or its folder see the same names as locally); removed afterwards."""
    tmp = tempfile.mkdtemp(prefix="winnow-input-")
    parent = basename(dirname(uri)) or "input"
    local = os.path.join(tmp, parent, basename(uri))
    try:
        try:
            download_file(uri, local)
        except OSError as exc:
            raise StorageError(f"cannot download {uri}: {exc}") from exc
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- writing ----------------------------------------------------------------------------------------------------
def write_bytes(uri: str, data: bytes) -> None:
    """One object, written in one request (a PUT is atomic: readers see the old object or the new one)."""
    filesystem, path = resolve(uri)
    with filesystem.open_output_stream(path) as out:
        out.write(data)


def printable(text: str) -> str:
    """``text`` as valid Unicode for logs, JSON and Parquet: unchanged when it encodes as UTF-8; otherwise each
    lone surrogate (an undecodable byte of a file name, kept by ``surrogateescape``) is written ``\\xNN``, as
    ``repr`` of the file name's bytes shows it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if _escaped_bytes_only(text) else None
        if raw is None:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


def _escaped_bytes_only(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def _printable_json(obj: Any) -> Any:
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {printable(k) if isinstance(k, str) else k: _printable_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_printable_json(v) for v in obj]
    return obj


def json_bytes(obj: Any) -> bytes:
    """The JSON encoding Winnow writes everywhere (the same bytes locally and on object storage).

    Always valid UTF-8 without surrogate escapes (DuckDB refuses those): a string holding undecodable bytes of a
    file name is written through :func:`printable`."""
    text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(_printable_json(obj), indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, json_bytes(obj))


def upload_file(local: str, uri: str) -> None:
    """Copy a finished local file to ``uri`` in one C++ call (no Python code runs mid-upload, so an exception cannot
    complete a partial object; a killed process never completes the upload)."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    fs.copy_files(
        local,
        path,
        source_filesystem=fs.LocalFileSystem(),
        destination_filesystem=filesystem,
        chunk_size=8 << 20,
        use_threads=False,
    )


def delete(uri: str) -> None:
    filesystem, path = resolve(uri)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(path)


def forwarded_env() -> dict[str, str]:
    """The object-store settings of this process, to hand to Ray tasks (see ``runner``)."""
    return {k: v for k, v in os.environ.items() if k in ENV_VARS}
