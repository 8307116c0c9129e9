"""The model trainers read through the pipeline's own readers (classifiers/corpora.py): one reader per source."""

from __future__ import annotations

import glob
import os

import pyarrow as pa
import pytest

from classifiers import corpora
from classifiers.dataset import read_pieces
from filters.gutenberg import StripGutenberg
from filters.wikitext import wikitext_to_prose
from pipelines.core.recipe import Skip
from pipelines.readers.books import BooksReader
from pipelines.readers.wikipedia import WikipediaReader
from tests.helpers.paths import FIXTURES, corpus_path


def _pipeline_book_body(path: str) -> str:
    """What the books recipe keeps of a file: its reader, then the Gutenberg step."""
    rows = [r for r in BooksReader().read(path) if not isinstance(r, Skip)]
    assert len(rows) == 1
    batch = pa.table({"text": [rows[0]["text"]], "meta": [None]})
    return StripGutenberg().process(batch).table.column("text")[0].as_py()


@pytest.mark.parametrize("name", ["pg90001.txt", "pg90002.txt", "pg90003-8.txt"])
def test_a_books_training_text_is_the_books_recipe_body(name):
    path = os.path.join(FIXTURES, "books", name)
    assert corpora.book_text(path) == _pipeline_book_body(path)


def test_the_real_books_train_on_the_recipe_body():
    for path in sorted(glob.glob(os.path.join(corpus_path("books"), "*.txt"))):
        body = corpora.book_text(path)
        assert body == _pipeline_book_body(path), path
        assert "PROJECT GUTENBERG" not in body[:2000].upper()  # the header and licence are gone


def test_wikipedia_training_text_is_the_readers_articles():
    path = os.path.join(FIXTURES, "wikipedia", "enwiki-sample.xml")
    rows = [
        r for r in WikipediaReader(languages=None, keep_wikitext=True).read(path) if not isinstance(r, Skip)
    ]
    expected = [
        wikitext_to_prose(r["wikitext"]) for r in rows if r.get("reason") in (None, "wiki:disambiguation")
    ]
    docs = list(corpora.wikipedia_docs(path, min_chars=200))
    assert [d.text for d in docs] == [t for t in expected if len(t) >= 200]
    assert docs and {d.lang for d in docs} == {"en"}
    # redirects (Lady Lovelace) and other namespaces (Talk:, Template:) are not training text
    titles = [r["title"] for r in corpora.wiki_pages(path)]
    assert "Ada Lovelace" in titles and not {"Lady Lovelace", "Talk:Ada Lovelace"} & set(titles)
    assert all("[[" not in d.text and "{{" not in d.text for d in docs)


def test_an_arxiv_paper_is_read_whole_with_its_inputs_and_as_prose():
    paper = os.path.join(FIXTURES, "arxiv", "lensing-note")
    text = "\n".join(d.text for d in corpora.arxiv_docs(paper))
    assert "We stack 120 groups in bins of richness." in text  # from sections/method.tex, inlined
    assert text.count("We stack 120 groups") == 1
    assert "\\section" not in text and "$" not in text and "draft-notes" not in text
    # read_pieces keys the pieces by the paper, however many .tex files it has
    pieces = read_pieces(os.path.join(FIXTURES, "arxiv"), 1)
    assert {p.key for p in pieces if p.kind == "arxiv"} >= {"lensing-note"}
    assert sum("We stack 120 groups" in p.text for p in pieces) == 1


def test_stackexchange_reference_text_is_the_top_answers_as_prose():
    path = os.path.join(FIXTURES, "stackexchange", "cooking.stackexchange.com", "Posts.xml")
    docs = list(corpora.stackexchange_docs(path, min_score=3, min_chars=1))
    threads = list(corpora.stackexchange_threads(path))
    # the answers scored 3 or more (as integers: "10" > "3"), each the prose of an answer the reader's thread holds
    top = [s for t in threads for s in t["meta"]["answer_scores"] if s >= 3]
    assert 2 <= len(docs) <= len(top)
    assert all(any(d.text.split("\n")[0] in t["text"] for t in threads) for d in docs)
    assert all("<p>" not in d.text and "&amp;" not in d.text for d in docs)
    # code blocks are not prose: the reader keeps them in the thread, the training text drops them
    assert any("cups_to_grams" in t["text"] for t in threads) and not any(
        "cups_to_grams" in d.text for d in docs
    )
