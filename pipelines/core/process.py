"""Processing of one input, start to finish, in one process: read → steps → write kept and rejected → stats → marker.

This is the whole unit of work; the runner only decides where it runs.  Outputs are streamed to temporary files and
renamed when complete; the completion marker is written last, so an input is either entirely done or not at all.
On object storage (OUTPUT ``s3://...``) there is no rename: each Parquet file is built in a local temporary file and
uploaded under its final name when complete (the object appears whole or not at all), then stats, then the marker;
:class:`pipelines.core.folder.Folder` does both.
"""

from __future__ import annotations

import json
import logging
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
from pipelines.core.errors import describe, is_environment_error
from pipelines.core.folder import file_info, split
from pipelines.core.layout import SourceLayout, input_key, printable_path
from pipelines.core.recipe import Recipe, Skip
from pipelines.core.schema import conform, rejected_schema, table_from_rows
from pipelines.core.steps import Step, StepResult, check_kind, routed_rows

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
    """Counts and conforms the tables written to one :meth:`Folder.parquet_writer` (which commits atomically)."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self.writer, self.schema = writer, schema
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(conform(table, self.schema))
            self.rows += table.num_rows


def _batches(recipe: Recipe, path: str, skipped: Counter, errors: list[str]) -> Iterator[pa.Table]:
    """Read ``path`` into Arrow batches; a reader's data error ends the input but keeps what was read before it.

    An environment error (``pipelines.core.errors``) propagates: the input fails without a marker and a rerun reads it
    again once the problem (a missing module, permissions, a full disk...) is fixed."""
    base_schema = recipe.schema()
    rows: list[Mapping[str, Any]] = []
    size = recipe.reader.batch_size
    held = (
        0  # characters of text in `rows`: a batch is also cut by size, so 256 huge books never sit together
    )
    try:
        for item in _read(recipe.reader, path):
            if isinstance(item, Skip):
                skipped[item.reason] += item.count
                continue
            rows.append(item)
            held += len(item.get("text") or "")
            if len(rows) >= size or held >= MAX_BATCH_CHARS:
                batch, rows, held = rows, [], 0
                yield _rows_to_table(batch, base_schema, recipe.source)
    except Exception as exc:  # noqa: BLE001 - a reader's data error is recorded, never fatal to the run
        if is_environment_error(exc):
            raise
        reason = f"read_error:{type(exc).__name__}"
        skipped[reason] += 1
        message = describe(exc).split(": ", 1)[-1]
        errors.append(f"{reason}: {message}")
        log.warning("input %s: %s after %d rows in the last batch: %s", path, reason, len(rows), message)
        log.debug("%s", traceback.format_exc())
    if rows:
        yield _rows_to_table(rows, base_schema, recipe.source)


def _read(reader: Any, path: str) -> Iterator[Mapping[str, Any] | Skip]:
    """``reader.read(path)``; an input on object storage goes to a reader that streams URIs as it is, and to any
    other reader as a local temporary copy (removed when the input is done)."""
    if reader.reads_uris:
        yield from reader.read(path)
        return
    folder, name = split(path)
    with folder.local_copy(name) as local:  # the file itself when it is local
        yield from reader.read(local)


def _rows_to_table(rows: list[Mapping[str, Any]], schema: pa.Schema, source: str) -> pa.Table:
    """The reader's rows as a batch (with the reader's ``reason`` column); a row that cannot become Arrow (a lone
    surrogate in a string, an integer out of range) becomes a rejected row ``schema:invalid_<column>`` with that value
    made representable, and the rest of the batch goes on."""
    full = pa.schema(list(schema) + [pa.field("reason", pa.string())])
    rows = [{"source": source, **r} for r in rows]
    try:
        return table_from_rows(rows, full)
    except Exception as exc:  # noqa: BLE001 - find the bad rows below
        if is_environment_error(exc):
            raise
    tables = []
    for row in rows:
        try:
            tables.append(table_from_rows([row], full))
        except Exception as exc:  # noqa: BLE001 - one row's values, recorded as its rejection
            if is_environment_error(exc):
                raise
            tables.append(table_from_rows([_representable(row, full)], full))
    return pa.concat_tables(tables)


def _representable(row: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """``row`` with each value Arrow refuses replaced (strings: the bad characters backslash-escaped; others: null),
    rejected for the first such column."""
    out = dict(row)
    bad: list[str] = []
    for col in schema:
        value = out.get(col.name)
        if value is None or col.name == "reason":
            continue
        try:
            table_from_rows([{col.name: value}], pa.schema([col.with_nullable(True)]))
            continue
        except Exception as exc:  # noqa: BLE001 - this column is the bad one
            if is_environment_error(exc):
                raise
        bad.append(col.name)
        fixed = _escape(value)
        out[col.name] = fixed if fixed is not None or col.nullable else f"invalid:{_escape(repr(value))}"
    out["reason"] = f"schema:invalid_{bad[0]}" if bad else "schema:invalid_row"
    return out


def _escape(value: Any) -> str | None:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):  # ``meta``: ASCII JSON escapes what UTF-8 cannot hold
        return json.dumps(value, ensure_ascii=True, sort_keys=True, default=str)
    return None


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
        result = _apply_routed(step, batch)  # checks the step's own results against its kind (check_kind)
        st.seconds += time.perf_counter() - t0
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


def _apply_routed(step: Step, batch: pa.Table) -> StepResult:
    """``_apply`` on the rows whose domain the step does not skip (``Step.skip_domains``); the skipped rows are
    merged back in their places, unchanged, kept, with nulls in the columns the step adds."""
    routed = routed_rows(step, batch)
    if routed is None:
        return _apply(step, batch)
    run, skip = routed
    result = _apply(step, batch.take(run)) if run else StepResult(extend_table(batch.slice(0, 0), step))
    skipped = conform(extend_table(batch.take(skip), step), result.table.schema)
    merged = pa.concat_tables([result.table, skipped])
    reasons = list(result.reasons) if result.reasons is not None else [None] * len(run)
    reasons += [None] * len(skip)
    order = sorted(range(len(run) + len(skip)), key=(run + skip).__getitem__)  # back to the batch's order
    return StepResult(merged.take(order), [reasons[i] for i in order], result.changed)


def extend_table(table: pa.Table, step: Step) -> pa.Table:
    """``table`` with null columns for what ``step`` adds and it lacks."""
    for name, dtype in step.adds().items():
        if name not in table.column_names:
            table = table.append_column(pa.field(name, dtype), pa.nulls(table.num_rows, dtype))
    return table


def _apply(step: Step, batch: pa.Table) -> StepResult:
    """``step(batch)``; when the step raises a data error the batch is redone one row at a time and each row that
    raises is rejected ``<step>:error:<Type>``, so one bad document neither ends the input nor loses the others.
    An environment error (``pipelines.core.errors``) propagates: the input fails and a rerun redoes it; so does a
    step that breaks the contract of its kind (``check_kind``), a bug rather than bad data."""
    try:
        result = step(batch)
    except Exception as exc:  # noqa: BLE001 - isolate the bad rows below
        if is_environment_error(exc):
            raise
        log.warning(
            "step %s failed on a batch of %d row(s) (%s): retrying row by row",
            step.name,
            batch.num_rows,
            describe(exc),
        )
    else:
        check_kind(step, batch, result)  # outside the try: a broken contract is a bug, not a bad row
        return result
    parts: list[pa.Table] = []
    reasons: list[str | None] = []
    changed = 0
    schema: pa.Schema | None = None
    for i in range(batch.num_rows):
        row = batch.slice(i, 1)
        try:
            result = step(row)
        except Exception as exc:  # noqa: BLE001 - this row is the bad one: rejected with the error's type
            if is_environment_error(exc):
                raise
            parts.append(row)
            reasons.append(f"{step.name}:error:{type(exc).__name__}")
            continue
        check_kind(step, row, result)  # the rows rejected here for an error are the runner's, not the step's
        schema = schema or result.table.schema
        parts.append(result.table)
        reasons.append(None if result.reasons is None else list(result.reasons)[0])
        changed += result.changed
    schema = schema or batch.schema
    return StepResult(pa.concat_tables([conform(p, schema) for p in parts]), reasons, changed)


def _input_bytes(path: str) -> int | None:
    info = file_info(path)
    return None if info is None else info.size


def process_input(recipe: Recipe, path: str, out_root: str, input_bytes: int | None = None) -> dict[str, Any]:
    """Process one input completely and mark it done; returns its stats (also written to stats/<key>.json).

    ``input_bytes`` is its size when the caller listed it (the runner does, one listing per folder); without it
    the input is looked up (a HEAD request on an object store)."""
    t0 = time.perf_counter()
    layout = SourceLayout(out_root, recipe.source)
    layout.make_dirs()
    key = input_key(path)
    schema = recipe.schema()
    rej_schema = rejected_schema(schema)
    folder = layout.folder
    step_stats = [StepStats(s.name, s.kind) for s in recipe.steps]
    skipped: Counter = Counter()
    errors: list[str] = []
    reasons: Counter = Counter()
    read = 0
    for step in recipe.steps:
        step.start_input(path)
    # both files commit when the block ends (always a file, empty or not); an exception leaves neither
    with (
        folder.parquet_writer(layout.name("docs", key, "parquet"), schema, **PARQUET_OPTIONS) as docs_writer,
        folder.parquet_writer(
            layout.name("rejected", key, "parquet"), rej_schema, **PARQUET_OPTIONS
        ) as rej_writer,
    ):
        docs, rejected = _ParquetSink(docs_writer, schema), _ParquetSink(rej_writer, rej_schema)
        for batch in _batches(recipe, path, skipped, errors):
            read += batch.num_rows
            # rows the reader already rejected
            pre = batch.column("reason").to_pylist()
            if any(r is not None for r in pre):
                batch, dropped, why = _split(batch, pre)
                reasons.update(why)
                rejected.write(
                    dropped.append_column("rejected_by", pa.array(["reader"] * len(why), pa.string()))
                )
            batch = batch.drop_columns(["reason"])
            kept, rej_tables = run_steps(recipe.steps, batch, step_stats)
            docs.write(kept)
            for t in rej_tables:
                reasons.update(t.column("reason").to_pylist())
                rejected.write(t)
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
        "input_bytes": _input_bytes(path) if input_bytes is None else input_bytes,
    }
    if read != docs.rows + rejected.rows:  # the accounting invariant; a bug, never bad input
        raise AssertionError(f"{path}: read {read} != kept {docs.rows} + rejected {rejected.rows}")
    folder.write_json(layout.name("stats", key, "json"), stats)
    folder.write_json(layout.name("_done", key, "json"), {"input": stats["input"], "key": key, "read": read})
    return stats
