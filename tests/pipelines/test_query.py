"""``winnow query --format table|csv|json --limit N``: a table shows 50 rows and says how many more; CSV and JSON
Lines give every row (unless --limit), read back exactly by the csv and json modules."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa

from pipelines.cli import main
from tests.helpers.mixture_data import docs_table, write_docs


def _output(tmp_path) -> str:
    out = str(tmp_path / "out")
    write_docs(out, "github", docs_table("github", 120, seed=4))  # code: newlines, quotes, commas in the text
    books = docs_table("books", 5, seed=1)
    texts = books.column("text").to_pylist()
    texts[0] = 'He said, "a, b"\nand left; ünïcödé stays'
    write_docs(out, "books", books.set_column(3, "text", pa.array(texts, pa.large_string())))
    return out


def _query(
    capsys, out: str, *extra: str, sql: str = "SELECT id, text, lang_score FROM docs ORDER BY id"
) -> str:
    capsys.readouterr()
    assert main(["query", "--output", out, "--sql", sql, *extra]) == 0
    return capsys.readouterr().out


def test_table_is_limited_with_a_note_and_csv_json_give_every_row(tmp_path, capsys):
    out = _output(tmp_path)
    expected = docs_table("books", 5, seed=1).num_rows + 120
    table = _query(capsys, out).splitlines()
    assert len(table) == 2 + 50 + 1 and table[0].split() == ["id", "text", "lang_score"]
    assert (
        table[-1]
        == f"({expected} rows; 50 shown, {expected - 50} more: raise --limit, or --format csv|json for all)"
    )
    assert _query(capsys, out, "--limit", "200").splitlines()[-1] == f"({expected} rows)"

    rows = list(csv.DictReader(io.StringIO(_query(capsys, out, "--format", "csv"))))
    assert len(rows) == expected and rows[0]["id"] == "books/1/00000"
    assert rows[0]["text"] == 'He said, "a, b"\nand left; ünïcödé stays'
    code = next(r for r in rows if r["id"].startswith("github/"))
    assert "\n" in code["text"] and float(code["lang_score"]) > 0

    lines = _query(capsys, out, "--format", "json").splitlines()
    assert len(lines) == expected
    first = json.loads(lines[0])
    assert first["text"] == 'He said, "a, b"\nand left; ünïcödé stays' and isinstance(
        first["lang_score"], float
    )
    limited = _query(capsys, out, "--format", "json", "--limit", "3").splitlines()
    assert [json.loads(x)["id"] for x in limited] == [json.loads(x)["id"] for x in lines[:3]]


def test_csv_writes_nested_values_as_json(tmp_path, capsys):
    out = _output(tmp_path)
    sql = "SELECT source, list(id ORDER BY id)[1:2] AS ids, count(*) AS n FROM docs GROUP BY 1 ORDER BY 1"
    rows = list(csv.DictReader(io.StringIO(_query(capsys, out, "--format", "csv", sql=sql))))
    assert [r["source"] for r in rows] == ["books", "github"]
    assert json.loads(rows[1]["ids"]) == ["github/4/00000", "github/4/00001"] and rows[1]["n"] == "120"
