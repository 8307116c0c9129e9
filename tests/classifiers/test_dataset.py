"""The train / held-out split is by document, deterministic, and keeps every kind represented."""

from __future__ import annotations

import os
import random

from classifiers.dataset import HOLDOUT_EVERY, Piece, chunk_text, read_pieces, split
from tests.helpers.paths import FIXTURES


def _pieces() -> list[Piece]:
    """Books of many chunks, a few papers, many web pages: chunks share their document's key."""
    text = open(os.path.join(FIXTURES, "quality", "reference.jsonl"), encoding="utf-8").read()
    out = [
        Piece(f"{text[i * 50 : i * 50 + 400]}", f"book{b}.txt", "books", 1)
        for b in range(5)
        for i in range(30)
    ]
    out += [Piece(f"paper {p} part {i}", f"paper{p}", "arxiv", 1) for p in range(3) for i in range(4)]
    out += [Piece(f"page {w}", f"warc#{w}", "web", 0) for w in range(40)]
    return out


def test_split_keeps_documents_whole_and_every_kind_held_out():
    train, held = split(_pieces())
    train_docs = {(p.kind, p.key) for p in train}
    held_docs = {(p.kind, p.key) for p in held}
    assert not train_docs & held_docs
    assert {k for k, _ in held_docs} == {"books", "arxiv", "web"}
    assert len([d for d in held_docs if d[0] == "web"]) == 40 // HOLDOUT_EVERY
    assert all(sum(1 for p in held if p.key == key) == 30 for kind, key in held_docs if kind == "books")


def test_split_does_not_depend_on_reading_order():
    pieces = _pieces()
    shuffled = pieces[:]
    random.Random(1).shuffle(shuffled)
    key = lambda ps: sorted((p.kind, p.key, p.text) for p in ps)  # noqa: E731
    assert key(split(pieces)[1]) == key(split(shuffled)[1])


def test_chunks_are_paragraph_sized_and_short_text_stays_whole():
    long = "\n".join(f"Line {i} of a long article, with some words in it." for i in range(400))
    chunks = chunk_text(long, size=2000)
    assert len(chunks) > 5 and all(len(c) >= 2000 for c in chunks[:-1])
    assert "".join(c.replace("\n", "") for c in chunks) == long.replace("\n", "")
    assert chunk_text("one short line") == ["one short line"]


def test_read_pieces_keys_a_jsonl_row_by_file_and_line(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "first document"}\n{"text": "second document"}\n')
    (folder / "MANIFEST.md").write_text("not training text")
    pieces = read_pieces(str(folder), 1)
    assert [(p.key, p.kind, p.label) for p in pieces] == [
        ("a.jsonl#0", "jsonl", 1),
        ("a.jsonl#1", "jsonl", 1),
    ]
