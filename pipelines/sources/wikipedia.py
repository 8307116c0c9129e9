"""Wikipedia recipe (LLaMA-1): MediaWiki dumps of the selected languages → article plain text → length filter.

The reader does the source-specific work (streaming XML, redirects / namespaces / disambiguation, wikitext → text
with mwparserfromhell); the language is the dump's own (``lang`` column), so no LID model is needed.
"""

from __future__ import annotations

from typing import Any

from filters.wikitext import WikiLengthFilter
from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.recipe import Recipe
from pipelines.readers.wikipedia import WikipediaReader
from pipelines.sources.compose import assemble

STEPS = {
    "wiki_filter": WikiLengthFilter,
}

#: no corpus stage for this source (the shape is that of STEPS; see commoncrawl.py)
CORPUS_STAGES: dict[str, type[CorpusStage]] = {}


def build_recipe(config: dict[str, Any]) -> Recipe:
    return assemble("wikipedia", WikipediaReader, STEPS, config, CORPUS_STAGES)
