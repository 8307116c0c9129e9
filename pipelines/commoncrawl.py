"""CommonCrawl recipe (CCNet / RedPajama / FineWeb order): WARC → extract → LID → heuristics.

Later passes plug in where marked: line-level dedup goes between extraction and LID (as CCNet), perplexity and the
classifiers after the heuristics (cheap first), MinHash document dedup as a corpus stage after every input is done.
"""

from __future__ import annotations

from typing import Any

from filters.extract import ExtractText
from filters.heuristics import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from filters.langid import LanguageFilter, LanguageID
from pipelines.readers.warc import WarcReader
from pipelines.recipe import Recipe
from pipelines.recipes import assemble

STEPS = {
    "extract": ExtractText,
    # line-level dedup: here (issue 3)
    "lid": LanguageID,
    "lang_filter": LanguageFilter,
    "gopher_rep": GopherRepetition,
    "gopher": GopherQuality,
    "c4": C4Quality,
    "fineweb": FineWebQuality,
    # perplexity, wiki-reference and RoBERTa classifiers: here (issue 4)
}


def build_recipe(config: dict[str, Any]) -> Recipe:
    return assemble("commoncrawl", WarcReader, STEPS, config)
