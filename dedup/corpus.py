"""The inputs of a dedup workflow: Parquet files of documents, each with a stable index and a protected flag.

A document is addressed by ``gid = file_index << 32 | row``: no string ids travel through the hash passes, and a
removal pass finds its rows by number.  Files of a *reference* corpus (e.g. Wikipedia when deduplicating
CommonCrawl against it) take part in the matching but are never removed from.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_BITS = 32


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    protected: bool = False

    @property
    def key(self) -> str:
        return f"{self.index:05d}"


def list_parquet(spec: str) -> list[str]:
    """Parquet files named by ``spec``: a file, a folder (recursively) or a glob."""
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


def build_inputs(inputs: list[str], references: list[str] | None = None) -> list[InputFile]:
    files = [(p, False) for spec in inputs for p in list_parquet(spec)]
    files += [(p, True) for spec in (references or []) for p in list_parquet(spec)]
    seen: set[str] = set()
    out: list[InputFile] = []
    for path, protected in files:
        if path in seen:
            continue
        seen.add(path)
        out.append(InputFile(len(out), path, protected))
    return out


def fingerprint(files: list[InputFile], settings: dict[str, Any]) -> str:
    """Names the work folder: same inputs (path, size, mtime) and settings → same folder → resumable."""
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        st = os.stat(f.path)
        h.update(f"{f.path}|{st.st_size}|{st.st_mtime_ns}|{f.protected}\n".encode())
    return h.hexdigest()[:16]


def check_columns(path: str, needed: list[str]) -> None:
    names = pq.read_schema(path).names
    missing = [c for c in needed if c not in names]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; dedup inputs need {needed} (found {names})")


def iter_batches(path: str, columns: list[str], batch_rows: int) -> Iterator[tuple[int, pa.Table]]:
    """``(first_row, table)`` batches of a Parquet file, in row order."""
    pf = pq.ParquetFile(path)
    row = 0
    for rb in pf.iter_batches(batch_size=batch_rows, columns=columns):
        t = pa.Table.from_batches([rb])
        yield row, t
        row += t.num_rows


def gids(file_index: int, first_row: int, n: int) -> np.ndarray:
    return (np.uint64(file_index) << np.uint64(ROW_BITS)) | np.arange(
        first_row, first_row + n, dtype=np.uint64
    )


DOC_TABLE_SCHEMA = pa.schema(
    [
        ("gid", pa.uint64()),
        ("id", pa.string()),
        ("score", pa.float64()),
        ("protected", pa.bool_()),
        ("chars", pa.int64()),
    ]
)


def doc_table(
    t: pa.Table,
    g: np.ndarray,
    id_column: str,
    score_column: str | None,
    protected: bool,
    text_column: str = "text",
) -> pa.Table:
    """Per-document facts every pass keeps for one batch: global id, id, survivor score, reference or not, and the
    text's length in characters (the verify pass sizes its partitions with it, before reading any text).

    Row ``r`` of a file's doc table is the file's row ``r``, so a pass looks documents up by row number.
    """
    score = t.column(score_column).cast(pa.float64()) if score_column else pa.nulls(t.num_rows, pa.float64())
    chars = pc.fill_null(pc.utf8_length(t.column(text_column).cast(pa.string())), 0).cast(pa.int64())
    return pa.table(
        {
            "gid": pa.array(g, pa.uint64()),
            "id": t.column(id_column).cast(pa.string()),
            "score": score,
            "protected": pa.array(np.full(t.num_rows, protected)),
            "chars": chars,
        },
        schema=DOC_TABLE_SCHEMA,
    )


def split_gid(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = g.astype(np.uint64)
    return (g >> np.uint64(ROW_BITS)).astype(np.int64), (g & np.uint64(2**ROW_BITS - 1)).astype(np.int64)


def read_rows(path: str, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """Selected rows (sorted row numbers) of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    rows = np.sort(rows)
    parts = []
    start = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
            t = pf.read_row_group(rg, columns=columns)
            parts.append(t.take(pa.array(rows[lo:hi] - start)))
        start += n
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(parts)


def pmap(fn: Callable[[Any], Any], items: list[Any], workers: int = 1, executor: str = "local") -> list[Any]:
    """Run ``fn`` over ``items``: in this process, in a process pool, or as Ray tasks (the only Ray code here)."""
    if not items:
        return []
    if executor == "ray":
        import ray

        from pipelines.core.executor import init_ray

        init_ray()
        task = ray.remote(fn).options(max_retries=2)
        return ray.get([task.remote(it) for it in items])
    if executor == "process" and workers > 1 and len(items) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(items))) as ex:
            return list(ex.map(fn, items))
    return [fn(it) for it in items]


def write_parquet_atomic(table: pa.Table, path: str) -> None:
    from pipelines.core.layout import tmp_name

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tmp_name(path)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def marker(work: str, stage: str, unit: str) -> str:
    return os.path.join(work, "_done", stage, f"{unit}.json")


def is_done(work: str, stage: str, unit: str) -> bool:
    return os.path.exists(marker(work, stage, unit))


def mark_done(work: str, stage: str, unit: str, info: dict[str, Any] | None = None) -> None:
    from pipelines.core.layout import write_json_atomic

    write_json_atomic(marker(work, stage, unit), info or {})


def read_marker(work: str, stage: str, unit: str) -> dict[str, Any]:
    with open(marker(work, stage, unit), encoding="utf-8") as f:
        return json.load(f)
