"""The report's languages table: kept and rejected documents per language per source, with the top reasons."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.report.build import build_report
from pipelines.report.languages import NO_LANG, language_counts
from tests.helpers.mixture_data import docs_table, write_docs


def _rejected(out: str, source: str, rows: list[tuple[str | None, str]]) -> None:
    folder = os.path.join(out, source, "rejected")
    os.makedirs(folder, exist_ok=True)
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(len(rows))],
            "lang": pa.array([lang for lang, _ in rows], pa.string()),
            "reason": [reason for _, reason in rows],
        }
    )
    pq.write_table(table, os.path.join(folder, "r.parquet"))


def test_languages_table_counts_kept_and_rejected_per_language(tmp_path):
    out = str(tmp_path)
    docs = docs_table("commoncrawl", 10)
    langs = ["en"] * 6 + ["ja"] * 3 + ["de"]
    docs = docs.set_column(docs.schema.get_field_index("lang"), "lang", pa.array(langs, pa.string()))
    write_docs(out, "commoncrawl", docs)
    _rejected(
        out,
        "commoncrawl",
        [
            ("ja", "gopher:short_doc"),
            ("ja", "gopher_rep:top_2_gram"),
            ("ja", "gopher:short_doc"),
            ("en", "c4:too_few_sentences"),
            (None, "extract:no_text"),
            (None, "url:adult"),
        ],
    )
    write_docs(out, "books", docs_table("books", 3).drop_columns(["lang"]))  # no lang column: no table

    rows = {r["lang"]: r for r in language_counts(duckdb.connect(), out, "commoncrawl")}
    assert {k: (r["kept"], r["rejected"]) for k, r in rows.items()} == {
        "en": (6, 1),
        "ja": (3, 3),
        "de": (1, 0),
        NO_LANG: (0, 2),
    }
    assert rows["ja"]["reasons"] == [("gopher:short_doc", 2), ("gopher_rep:top_2_gram", 1)]

    page = open(build_report(out), encoding="utf-8").read()
    section = page.split("Languages: documents kept and rejected per language")[1].split("<h2>")[0]
    assert "commoncrawl: 4 language(s)" in section and "books" not in section
    assert (
        "<td>ja</td><td>3</td><td>3</td><td>gopher:short_doc (2), gopher_rep:top_2_gram (1)</td>" in section
    )
