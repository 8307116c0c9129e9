"""Books recipe: Gutenberg marker variants, metadata, encodings, zip input, caps, near-dup removal, real corpus."""

from __future__ import annotations

import codecs
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
NO_DEDUP = {"corpus_stages": {"book_dedup": {"enabled": False}}}


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


def _pg_text(number: int, encoding_line: str = "UTF-8") -> str:
    """A Gutenberg book (the fixture pg90001.txt) renumbered, with the given "Character set encoding:" line."""
    with open(os.path.join(BOOKS, "pg90001.txt"), encoding="utf-8") as f:
        text = f.read()
    text = text.replace("#90001]", f"#{number}]")
    return text.replace("Character set encoding: UTF-8", f"Character set encoding: {encoding_line}")


def test_declared_non_text_or_unknown_encodings_fall_back_to_detection():
    for declared in (
        "ROT13",
        "HEX",
        "IDNA",
        "base64",
        "zlib",
        "unicode_escape",
        "UTF-7",
        "x-no-such-charset",
        "cp500",  # EBCDIC: decodes any bytes, into nonsense
    ):
        book = _pg_text(1, declared)
        for data, charset in ((book.encode("utf-8"), "utf-8"), (book.encode("cp1252"), "cp1252")):
            text, cs = decode_book(data)
            assert cs == charset and "Léonie" in text, declared
    greek = _pg_text(1, "ISO-8859-7").replace("Léonie", "Λεωνίδας")
    text, cs = decode_book(greek.encode("iso8859-7"))  # a real charset that decodes the book is still used
    assert cs == "iso8859-7" and "Λεωνίδας" in text


def test_utf16_and_utf32_books_are_decoded():
    book = _pg_text(1).replace("\n", "\r\n")
    expected = book.replace("\r\n", "\n")
    for data, charset in (
        (book.encode("utf-16"), "utf-16"),  # with BOM (little-endian on this machine)
        (codecs.BOM_UTF16_BE + book.encode("utf-16-be"), "utf-16"),
        (book.encode("utf-16-le"), "utf-16-le"),  # no BOM: detected
        (book.encode("utf-16-be"), "utf-16-be"),
        (book.encode("utf-32"), "utf-32"),
        (codecs.BOM_UTF8 + book.encode("utf-8"), "utf-8"),
    ):
        assert decode_book(data) == (expected, charset)
    assert decode_book(book.encode("utf-16")[:-1])[1] == "utf-16"  # cut inside the last character
    # without "Project Gutenberg" in it, BOM-less UTF-16 is found by its NUL bytes
    plain = "Chapter one. The river bent twice before it ran down to the sea.\n" * 20
    assert decode_book(plain.encode("utf-16-le")) == (plain, "utf-16-le")
    assert decode_book(plain.encode("utf-16-be")) == (plain, "utf-16-be")


def test_a_start_marker_on_two_lines_does_not_leak_the_title_or_credits():
    wrapped = _pg_text(1).replace(
        "*** START OF THIS PROJECT GUTENBERG EBOOK THE MILLER'S DAUGHTER ***",
        "*** START OF THIS PROJECT GUTENBERG EBOOK\nTHE MILLER'S DAUGHTER ***",
    )
    header, body, _ = split_gutenberg(wrapped)
    assert header.endswith("THE MILLER'S DAUGHTER ***") and "MILLER'S DAUGHTER" not in body
    three = wrapped.replace("EBOOK\nTHE MILLER'S", "EBOOK THE\nMILLER'S DAUGHTER, A TALE OF THE\nRIVERLANDS")
    assert "RIVERLANDS" not in split_gutenberg(three)[1] and "DAUGHTER" not in split_gutenberg(three)[1]


def test_hostile_encodings_and_markers_through_the_recipe(tmp_path):
    """In one zip: a ROT13-declared book, a UTF-16 book, a book with a wrapped start marker, a plain one; a
    UTF-16 .txt beside it.  Every book is read, kept with its text, and nothing else is lost."""
    src = tmp_path / "in"
    src.mkdir()
    wrapped = _pg_text(4).replace(
        "*** START OF THIS PROJECT GUTENBERG EBOOK THE MILLER'S DAUGHTER ***",
        "*** START OF THIS PROJECT GUTENBERG EBOOK\nTHE MILLER'S DAUGHTER ***",
    )
    with zipfile.ZipFile(src / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rot13.txt", _pg_text(1, "ROT13").encode("utf-8"))
        zf.writestr("hex.txt", _pg_text(2, "HEX").encode("cp1252"))
        zf.writestr("utf16.txt", _pg_text(3).encode("utf-16"))
        zf.writestr("wrapped.txt", wrapped.encode("utf-8"))
        zf.writestr("idna.txt", _pg_text(5, "IDNA").encode("utf-8"))
    (src / "utf16-le.txt").write_bytes(_pg_text(6).replace("\n", "\r\n").encode("utf-16-le"))
    out = str(tmp_path / "out")
    res = run_source("books", str(src), out, NO_DEDUP)
    assert_accounting(out, "books")
    assert (res.summary["read"], res.summary["kept"], res.summary["errors"]) == (6, 6, [])
    docs = {json.loads(r["meta"])["file"]: r for r in read_kind(out, "books", "docs").to_pylist()}
    assert set(docs) == {
        "bundle.zip/rot13.txt",
        "bundle.zip/hex.txt",
        "bundle.zip/utf16.txt",
        "bundle.zip/wrapped.txt",
        "bundle.zip/idna.txt",
        "utf16-le.txt",
    }
    for row in docs.values():
        assert row["text"].startswith("CHAPTER I.") and "Léonie" in row["text"], row["id"]
        assert "Produced by" not in row["text"] and "MILLER'S DAUGHTER ***" not in row["text"]
    assert json.loads(docs["utf16-le.txt"]["meta"])["charset"] == "utf-16-le"
