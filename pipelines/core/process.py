"""Processing of one input, start to finish, in one process: read → steps → write kept and rejected → stats → marker.

This is the whole unit of work; the runner only decides where it runs.  Outputs are streamed to temporary files and
renamed when complete; the completion marker is written last, so an input is either entirely done or not at all.
On object storage (OUTPUT ``s3://...``) there is no rename: each Parquet file is built in a local temporary file and
uploaded under its final name when complete (the object appears whole or not at all), then stats, then the marker.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core import storage
from pipelines.core.layout import SourceLayout, input_key, printable_path, tmp_name, write_json_atomic
from pipelines.core.recipe import Recipe, Skip
from pipelines.core.schema import conform, rejected_schema, table_from_rows
from pipelines.core.steps import Step, check_kind

log = logging.getLogger(__name__)

#: a batch holds at most ``batch_size`` rows and about this many characters of text
MAX_BATCH_CHARS = 64_000_000

PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["source", "lang", "reason", "rejected_by"]}


@dataclass
class StepStats:
    name: str
    kind: str
    seen: int = 0
    kept: int = 0
    changed: int = 0
    seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped"] = dict(sorted(self.dropped.items()))
        d["seconds"] = round(self.seconds, 4)
        return d


class _ParquetSink:
    """Streams tables to a temporary Parquet file; ``commit`` renames it into place (always writes a file).

    For a URI the temporary file is local and ``commit`` uploads it (no partial object is ever visible)."""

    def __init__(self, final: str, schema: pa.Schema):
        self.final, self.schema = final, schema
        self.remote = storage.is_uri(final)
        if self.remote:
            fd, self.tmp = tempfile.mkstemp(prefix="winnow-", suffix=".parquet")
            os.close(fd)
        else:
            self.tmp = tmp_name(final)
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, self.schema, **PARQUET_OPTIONS)
        self.writer.write_table(conform(table, self.schema))
        self.rows += table.num_rows

    def commit(self) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, self.schema, **PARQUET_OPTIONS)
        self.writer.close()
        if self.remote:
            try:
                storage.upload_file(self.tmp, self.final)
            finally:
                os.remove(self.tmp)
            return
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def _batches(recipe: Recipe, path: str, skipped: Counter, errors: list[str]) -> Iterator[pa.Table]:
    """Read ``path`` into Arrow batches; a reader exception ends the input but keeps what was read before it."""
    base_schema = recipe.schema()
    rows: list[Mapping[str, Any]] = []
    size = recipe.reader.batch_size
    held = 0  # characters of text in `rows`: a batch is also cut by size, so 256 huge books never sit together
    try:
        for item in _read(recipe.reader, path):
            if isinstance(item, Skip):
                skipped[item.reason] += item.count
                continue
            rows.append(item)
            held += len(item.get("text") or "")
            if len(rows) >= size or held >= MAX_BATCH_CHARS:
                yield _rows_to_table(rows, base_schema, recipe.source)
                rows, held = [], 0
    except storage.StorageError:  # the store failed, not the input: fail the task, leave no marker, redo it later
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is recorded, never fatal to the run
        reason = f"read_error:{type(exc).__name__}"
        skipped[reason] += 1
        message = str(exc)
        # hostile input ends up in messages (warcio quotes the whole first "line" of a bomb)
        if len(message) > 1000:
            message = f"{message[:1000]}... ({len(message):,} chars)"
        errors.append(f"{reason}: {message}")
        log.warning("input %s: %s after %d rows in the last batch: %s", path, reason, len(rows), message)
        log.debug("%s", traceback.format_exc())
    if rows:
        yield _rows_to_table(rows, base_schema, recipe.source)


def _read(reader: Any, path: str) -> Iterator[Mapping[str, Any] | Skip]:
    """``reader.read(path)``; an input on object storage goes to a reader that streams URIs as it is, and to any
    other reader as a local temporary copy (removed when the input is done)."""
    if not storage.is_uri(path) or reader.reads_uris:
        yield from reader.read(path)
        return
    with storage.local_copy(path) as local:
        yield from reader.read(local)


def _rows_to_table(rows: list[Mapping[str, Any]], schema: pa.Schema, source: str) -> pa.Table:
    full = pa.schema(list(schema) + [pa.field("reason", pa.string())])
    return table_from_rows(({"source": source, **r} for r in rows), full)


def _split(table: pa.Table, reasons: list[str | None]) -> tuple[pa.Table, pa.Table, list[str]]:
    keep_mask = pa.array([r is None for r in reasons])
    kept = table.filter(keep_mask)
    dropped = table.filter(pc.invert(keep_mask))
    return kept, dropped, [r for r in reasons if r is not None]


def run_steps(steps: list[Step], batch: pa.Table, stats: list[StepStats]) -> tuple[pa.Table, list[pa.Table]]:
    """Apply the steps to one batch; returns the kept rows and the rejected rows (with reason / rejected_by)."""
    rejected: list[pa.Table] = []
    for step, st in zip(steps, stats, strict=True):
        if batch.num_rows == 0:
            break
        t0 = time.perf_counter()
        result = step(batch)
        st.seconds += time.perf_counter() - t0
        check_kind(step, batch, result)
        st.seen += batch.num_rows
        st.changed += result.changed
        if result.table.num_rows != batch.num_rows:
            raise RuntimeError(f"step {step.name} returned {result.table.num_rows} rows for {batch.num_rows}")
        batch = result.table
        if result.reasons is not None:
            reasons = list(result.reasons)
            if any(r is not None for r in reasons):
                batch, dropped, why = _split(batch, reasons)
                st.dropped.update(why)
                dropped = dropped.append_column("reason", pa.array(why, pa.string()))
                dropped = dropped.append_column("rejected_by", pa.array([step.name] * len(why), pa.string()))
                rejected.append(dropped)
        st.kept += batch.num_rows
    return batch, rejected


def _input_bytes(path: str) -> int | None:
    if storage.is_uri(path):
        return storage.getsize(path) if storage.isfile(path) else None
    return os.path.getsize(path) if os.path.isfile(path) else None


def process_input(recipe: Recipe, path: str, out_root: str) -> dict[str, Any]:
    """Process one input completely and mark it done; returns its stats (also written to stats/<key>.json)."""
    t0 = time.perf_counter()
    layout = SourceLayout(out_root, recipe.source)
    layout.make_dirs()
    key = input_key(path)
    schema = recipe.schema()
    rej_schema = rejected_schema(schema)
    docs = _ParquetSink(layout.path("docs", key, "parquet"), schema)
    rejected = _ParquetSink(layout.path("rejected", key, "parquet"), rej_schema)
    step_stats = [StepStats(s.name, s.kind) for s in recipe.steps]
    skipped: Counter = Counter()
    errors: list[str] = []
    reasons: Counter = Counter()
    read = 0
    for step in recipe.steps:
        step.start_input(path)
    try:
        for batch in _batches(recipe, path, skipped, errors):
            read += batch.num_rows
            # rows the reader already rejected
            pre = batch.column("reason").to_pylist()
            if any(r is not None for r in pre):
                batch, dropped, why = _split(batch, pre)
                reasons.update(why)
                rejected.write(dropped.append_column("rejected_by", pa.array(["reader"] * len(why), pa.string())))
            batch = batch.drop_columns(["reason"])
            kept, rej_tables = run_steps(recipe.steps, batch, step_stats)
            docs.write(kept)
            for t in rej_tables:
                reasons.update(t.column("reason").to_pylist())
                rejected.write(t)
        docs.commit()
        rejected.commit()
    except BaseException:
        docs.abort()
        rejected.abort()
        raise
    stats = {
        "source": recipe.source,
        "input": printable_path(storage.absolute(path)),
        "key": key,
        "read": read,
        "kept": docs.rows,
        "rejected": rejected.rows,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "skipped": dict(sorted(skipped.items())),
        "errors": errors,
        "steps": [s.to_dict() for s in step_stats],
        "seconds": round(time.perf_counter() - t0, 3),
        "input_bytes": _input_bytes(path),
    }
    if read != docs.rows + rejected.rows:  # the accounting invariant; a bug, never bad input
        raise AssertionError(f"{path}: read {read} != kept {docs.rows} + rejected {rejected.rows}")
    write_json_atomic(layout.path("stats", key, "json"), stats)
    write_json_atomic(layout.done_path(key), {"input": stats["input"], "key": key, "read": read})
    return stats
