"""Books recipe (LLaMA-1 Gutenberg/Books3 rules): Gutenberg text → strip header/footer → book-level near-dup removal.

The near-duplicate removal (>=90% similar books, LLaMA-1) is the dedup package's ``BookDedupStage`` (MinHash with
exact Jaccard verification), run as a corpus stage once every book is written (``corpus_stages: {book_dedup: ...}``).
"""

from __future__ import annotations

from typing import Any

from dedup.stages import BookDedupStage
from filters.gutenberg import StripGutenberg
from pipelines.core.recipe import Recipe
from pipelines.readers.books import BooksReader
from pipelines.sources.compose import assemble

STEPS = {
    "strip_gutenberg": StripGutenberg,
}

CORPUS_STAGES = {
    "book_dedup": BookDedupStage,
}


def build_recipe(config: dict[str, Any]) -> Recipe:
    return assemble("books", BooksReader, STEPS, config, CORPUS_STAGES)
