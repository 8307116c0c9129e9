"""The document schema: one document is one row of a ``pyarrow.Table``.

Every source produces the same core columns; steps add score columns that they declare, so the full schema of a
recipe is known before any data is read (rejected rows from an early step still get the later columns, as nulls).
``meta`` is a JSON string of source-specific fields (DuckDB: ``meta->>'$.warc_date'``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

CORE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("text", pa.large_string()),
    pa.field("meta", pa.string()),
)
CORE_SCHEMA = pa.schema(CORE_FIELDS)
CORE_COLUMNS: tuple[str, ...] = tuple(f.name for f in CORE_FIELDS)

# Columns that only rejected rows carry: why, and which step said so.
REASON_FIELDS: tuple[pa.Field, ...] = (
    pa.field("reason", pa.string(), nullable=False),
    pa.field("rejected_by", pa.string(), nullable=False),
)


def extend_schema(schema: pa.Schema, adds: Mapping[str, pa.DataType]) -> pa.Schema:
    """Add the declared columns of a step; a column declared twice must keep its type."""
    for name, dtype in adds.items():
        idx = schema.get_field_index(name)
        if idx >= 0:
            if schema.field(idx).type != dtype:
                raise TypeError(f"column {name!r} declared as {dtype} but already {schema.field(idx).type}")
            continue
        schema = schema.append(pa.field(name, dtype))
    return schema


def rejected_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(list(schema) + list(REASON_FIELDS))


def encode_meta(meta: Mapping[str, Any] | None) -> str | None:
    if not meta:
        return None
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)


def decode_meta(meta: str | None) -> dict[str, Any]:
    return json.loads(meta) if meta else {}


def table_from_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from dict rows; missing columns become null, ``meta`` dicts are encoded."""
    rows = list(rows)
    columns = {}
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if field.name == "meta":
            values = [v if v is None or isinstance(v, str) else encode_meta(v) for v in values]
        columns[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder/cast ``table`` to ``schema``, filling columns it lacks with nulls (used for rejected rows)."""
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            arrays.append(col if col.type == field.type else col.cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
