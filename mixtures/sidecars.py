"""Sidecar files beside a source's docs (``OUTPUT/<source>/<kind>/<key>.parquet`` for ``docs/<key>.parquet``),
stamped with what they were computed from, so a rerun skips every docs file whose sidecar is current without
reading the docs (Dolma's "attributes" beside the documents)."""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.layout import tmp_name

log = logging.getLogger(__name__)


def sidecar_path(docs_file: str, kind: str) -> str:
    folder = os.path.dirname(os.path.dirname(os.path.abspath(docs_file)))
    return os.path.join(folder, kind, os.path.basename(docs_file))


def stamp(docs_file: str, **what: str) -> dict[str, str]:
    """What a sidecar was computed from: ``what`` (tokenizer, index fingerprint) and the docs file's size and mtime."""
    st = os.stat(docs_file)
    return {**what, "docs_size": str(st.st_size), "docs_mtime_ns": str(st.st_mtime_ns)}


def is_current(path: str, expected: dict[str, str]) -> bool:
    """Whether the sidecar at ``path`` carries ``expected`` (its Parquet footer only is read)."""
    if not os.path.exists(path):
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # noqa: BLE001 - a broken sidecar is recomputed, never trusted
        log.warning("sidecar %s unreadable (%s): recomputing", path, exc)
        return False
    return all(meta.get(k.encode(), b"").decode() == v for k, v in expected.items())


def write_sidecar(path: str, table: pa.Table, stamped: dict[str, str]) -> None:
    """Write ``table`` with its stamp atomically (a killed task leaves the old sidecar or none, never half)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tmp_name(path)
    pq.write_table(table.replace_schema_metadata(stamped), tmp, compression="zstd")
    os.replace(tmp, path)
