"""Books recipe (LLaMA-1 Gutenberg/Books3 rules): Gutenberg text → strip header/footer → book-level near-dup removal.

The near-duplicate removal (>=90% similar books, LLaMA-1) is the dedup package's ``books_dedup_stage`` (MinHash with
exact Jaccard verification), run as a corpus stage once every book is written.  When ``dedup.stages`` is not
importable the recipe still runs and logs that books were not deduplicated (``book_dedup.enabled: false`` silences it).
"""

from __future__ import annotations

import logging
from typing import Any

from filters.gutenberg import StripGutenberg
from pipelines.core.recipe import CorpusStage, Recipe
from pipelines.readers.books import BooksReader
from pipelines.sources.compose import assemble

log = logging.getLogger(__name__)

STEPS = {
    "strip_gutenberg": StripGutenberg,
}


def book_near_dup_stage(section: dict[str, Any] | None) -> CorpusStage | None:
    """The book-level near-dup hook: the dedup package's stage with this config section's settings, or ``None``."""
    section = dict(section or {})
    if not section.pop("enabled", True):
        return None
    try:
        from dedup.stages import books_dedup_stage
    except ImportError as exc:
        log.warning("books: dedup.stages unavailable (%s); book-level near-dup removal is skipped", exc)
        return None
    return books_dedup_stage(**section)


def build_recipe(config: dict[str, Any]) -> Recipe:
    stage = book_near_dup_stage(config.get("book_dedup"))
    return assemble("books", BooksReader, STEPS, config, corpus_stages=[stage] if stage else [])
