"""StackExchange recipe (LLaMA-1 / RedPajama): site dumps → one Q/A document per question → LID score → filter.

The reader does the source-specific work (streaming XML, joining answers to their question, HTML → text); the steps
score the language (kept as a column for mixtures; the language filter is off by default, as LLaMA-1 kept every
site's language) and drop questions without answers.
"""

from __future__ import annotations

from typing import Any

from filters.langid import LanguageFilter, LanguageID
from filters.stackexchange import QAFilter
from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.recipe import Recipe
from pipelines.readers.stackexchange import StackExchangeReader
from pipelines.sources.compose import assemble

STEPS = {
    "lid": LanguageID,
    "lang_filter": LanguageFilter,
    "qa_filter": QAFilter,
}

#: no corpus stage for this source (the shape is that of STEPS; see commoncrawl.py)
CORPUS_STAGES: dict[str, type[CorpusStage]] = {}


def build_recipe(config: dict[str, Any]) -> Recipe:
    return assemble("stackexchange", StackExchangeReader, STEPS, config, CORPUS_STAGES)
