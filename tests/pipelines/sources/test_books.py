"""Books recipe: Gutenberg marker variants, metadata, encodings, zip input, caps, near-dup removal, real corpus."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from filters.gutenberg import header_fields, split_gutenberg
from pipelines.readers.books import decode_book
from tests.helpers.paths import FIXTURES, corpus_path
from tests.helpers.sources import all_stats, assert_accounting, read_kind, run_source

BOOKS = os.path.join(FIXTURES, "books")
NO_DEDUP = {"book_dedup": {"enabled": False}}


def _docs(out: str) -> dict[str, dict]:
    return {
        r["meta"] and json.loads(r["meta"])["file"]: r for r in read_kind(out, "books", "docs").to_pylist()
    }


def test_marker_variants_and_metadata(tmp_path):
    run_source("books", BOOKS, str(tmp_path), NO_DEDUP)
    assert_accounting(str(tmp_path), "books")
    docs = _docs(str(tmp_path))
    assert set(docs) == {"pg90001.txt", "pg90002.txt", "pg90003-8.txt", "smallprint.txt"}
    for row in docs.values():
        text = row["text"]
        assert "\r" not in text and "PROJECT GUTENBERG" not in text.upper()
        assert "SMALL PRINT" not in text and "FULL LICENSE" not in text and "Produced by" not in text
    modern = docs["pg90001.txt"]
    assert modern["text"].startswith("CHAPTER I.") and modern["text"].rstrip().endswith("THE END.")
    assert "Léonie" in modern["text"]
    meta = json.loads(modern["meta"])
    assert meta["title"] == "The Miller's Daughter A Tale of the River Country"
    assert meta["author"] == "Jane Harrow" and meta["language"] == "English"
    assert meta["release_date"] == "March 3, 2009" and meta["ebook_number"] == "90001"
    assert modern["id"] == "gutenberg:90001:pg90001.txt"
    latin = docs["pg90003-8.txt"]
    assert json.loads(latin["meta"])["charset"] == "iso8859-1" and "Léonie" in latin["text"]
    assert docs["smallprint.txt"]["text"].startswith("CHAPTER I.")
    rej = read_kind(str(tmp_path), "books", "rejected").to_pylist()
    assert [(r["id"], r["reason"]) for r in rej] == [("file:not-gutenberg.txt", "gutenberg:no_start_marker")]


def test_book_text_that_looks_like_a_marker_stays():
    text = (
        "Title: X\n\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nCHAPTER I\nEND OF THE FIRST EPOCH.\n"
        "More text.\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicense"
    )
    header, body, footer = split_gutenberg(text)
    assert "END OF THE FIRST EPOCH." in body and "More text." in body and footer.startswith("***")
    assert header_fields(header)["title"] == "X"


def test_encoding_detection():
    assert decode_book("Caf\u00e9\r\n".encode())[0] == "Café\n"
    assert decode_book("Caf\u00e9\r\n".encode("latin-1")) == ("Café\n", "cp1252")
    text, cs = decode_book(b"Character set encoding: ISO-8859-1\r\n\xe9t\xe9")
    assert cs == "iso8859-1" and text.endswith("été")


def test_near_duplicate_editions_are_removed(tmp_path):
    pytest.importorskip("dedup.stages")
    res = run_source("books", BOOKS, str(tmp_path))
    assert_accounting(str(tmp_path), "books")
    docs = _docs(str(tmp_path))
    rej = {r["id"]: r["reason"] for r in read_kind(str(tmp_path), "books", "rejected").to_pylist()}
    # two editions of one book: one survives; a different book stays
    assert ("pg90001.txt" in docs) != ("pg90002.txt" in docs)
    assert list(rej.values()).count("dedup:book") == 1 and "pg90003-8.txt" in docs
    assert res.summary["corpus_stages"]["book_dedup"]["removed"] == 1


def test_zip_caps_and_hostile_input(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with open(os.path.join(BOOKS, "pg90001.txt"), "rb") as f:
            zf.writestr("pg90001.txt", f.read())
        zf.writestr("../escape.txt", b"x")
        zf.writestr("cover.jpg", b"\xff\xd8")
    (src / "bundle.zip").write_bytes(buf.getvalue())
    (src / "garbage.txt").write_bytes(bytes(range(256)) * 40)  # invalid UTF-8: decoded, rejected, not a crash
    (src / "huge.txt").write_bytes(b"word " * 50_000)
    (src / "broken.zip").write_bytes(buf.getvalue()[:100])
    out = str(tmp_path / "out")
    run_source("books", str(src), out, {**NO_DEDUP, "reader": {"max_book_bytes": 100_000}})
    assert_accounting(out, "books")
    stats = {os.path.basename(s["input"]): s for s in all_stats(out, "books")}
    assert stats["bundle.zip"]["kept"] == 1
    assert stats["bundle.zip"]["skipped"] == {"archive:unsafe_path": 1, "skip:not_txt": 1}
    assert stats["garbage.txt"]["rejected_by_reason"] == {"gutenberg:no_start_marker": 1}
    assert stats["huge.txt"]["rejected_by_reason"] == {"read:book_too_large": 1}
    assert stats["broken.zip"]["errors"] and stats["broken.zip"]["read"] == 0


@pytest.mark.integration
def test_real_books_corpus(tmp_path):
    res = run_source("books", corpus_path("books"), str(tmp_path))
    assert_accounting(str(tmp_path), "books")
    assert res.summary["read"] == 5 and res.summary["kept"] == 5
    for row in read_kind(str(tmp_path), "books", "docs").to_pylist():
        meta = json.loads(row["meta"])
        assert meta["title"] and meta["author"] and meta["language"] == "English" and meta["release_date"]
        assert meta["footer_found"] and "Project Gutenberg" not in row["text"][-3000:]
        assert "*** START" not in row["text"] and "\r" not in row["text"]
