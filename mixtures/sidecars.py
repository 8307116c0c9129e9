"""Sidecar files beside a source's docs (``OUTPUT/<source>/<kind>/<key>.parquet`` for ``docs/<key>.parquet``),
stamped with what they were computed from, so a rerun skips every docs file whose sidecar is current without
reading the docs (Dolma's "attributes" beside the documents)."""

from __future__ import annotations

import logging

import pyarrow as pa

from mixtures import store
from pipelines.core import storage

log = logging.getLogger(__name__)


def sidecar_path(docs_file: str, kind: str) -> str:
    folder = storage.dirname(storage.dirname(storage.absolute(docs_file)))
    return storage.join(folder, kind, storage.basename(docs_file))


def stamp(docs_file: str, **what: str) -> dict[str, str]:
    """What a sidecar was computed from: ``what`` (tokenizer, index fingerprint) and the docs file's size and mtime."""
    st = store.file_info(docs_file)
    if st is None:
        raise FileNotFoundError(f"{docs_file}: no such file or object")
    return {**what, "docs_size": str(st.size), "docs_mtime_ns": str(st.mtime_ns)}


def is_current(path: str, expected: dict[str, str]) -> bool:
    """Whether the sidecar at ``path`` carries ``expected`` (its Parquet footer only is read)."""
    if store.file_info(path) is None:
        return False
    try:
        meta = store.read_schema(path).metadata or {}
    except Exception as exc:  # noqa: BLE001 - a broken sidecar is recomputed, never trusted
        log.warning("sidecar %s unreadable (%s): recomputing", path, exc)
        return False
    return all(meta.get(k.encode(), b"").decode() == v for k, v in expected.items())


def write_sidecar(path: str, table: pa.Table, stamped: dict[str, str]) -> None:
    """Write ``table`` with its stamp atomically (a killed task leaves the old sidecar or none, never half)."""
    store.write_table(path, table.replace_schema_metadata(stamped), compression="zstd")
