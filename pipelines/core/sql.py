"""Quoting for the SQL Winnow writes for DuckDB: one definition, so every module escapes the same way."""

from __future__ import annotations


def quote(text: str) -> str:
    """A SQL string literal (a path, a value): single quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A SQL identifier (a column name that may hold spaces, capitals or quotes): double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def string_list(items: list[str]) -> str:
    """A DuckDB list literal of strings, e.g. the file list of ``read_parquet``."""
    return "[" + ", ".join(quote(s) for s in items) + "]"
