"""CommonCrawl recipe (CCNet / RedPajama / FineWeb order): WARC → extract → LID → heuristics.

Later passes plug in where marked: line-level dedup goes between extraction and LID (as CCNet), perplexity and the
classifiers after the heuristics (cheap first), MinHash document dedup as a corpus stage after every input is done.
"""

from __future__ import annotations

from typing import Any

from classifiers.gate import gate_model_filters
from classifiers.steps import Perplexity, RobertaQuality, ScoreFilter, WikiRefScore
from dedup.lines import LineDedup
from dedup.stages import stage_from_config
from filters.extract import ExtractText
from filters.heuristics import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from filters.langid import LanguageFilter, LanguageID
from pipelines.core.recipe import Recipe
from pipelines.readers.warc import WarcReader
from pipelines.sources.compose import assemble

STEPS = {
    "extract": ExtractText,
    "line_dedup": LineDedup,  # CCNet: line-level dedup between extraction and LID (dedup/lines.py)
    "lid": LanguageID,
    "lang_filter": LanguageFilter,
    "gopher_rep": GopherRepetition,
    "gopher": GopherQuality,
    "c4": C4Quality,
    "fineweb": FineWebQuality,
    # quality models (issue 4), a cascade: cheap KenLM + fastText first, RoBERTa only on what they keep
    "perplexity": Perplexity,
    "ppl_filter": ScoreFilter,
    "wikiref": WikiRefScore,
    "wikiref_filter": ScoreFilter,
    "roberta": RobertaQuality,
    "quality_filter": ScoreFilter,
}


#: the steps that use the quality models (shipped in classifiers/default_models, or your own from `make models`)
MODEL_STEPS = ("perplexity", "ppl_filter", "wikiref", "wikiref_filter", "roberta", "quality_filter")


def without_models() -> dict[str, Any]:
    """A config override that switches the model steps off (tests and benchmarks of the other steps)."""
    return {"steps": {name: {"enabled": False} for name in MODEL_STEPS}}


def build_recipe(config: dict[str, Any]) -> Recipe:
    # `enabled: auto` model filters: on only when the model meets its quality bar, else off with a WARNING
    config = gate_model_filters(config, "commoncrawl")
    minhash = stage_from_config(config.get("minhash"))  # document-level near-dup removal after filtering
    return assemble("commoncrawl", WarcReader, STEPS, config, corpus_stages=[minhash] if minhash else [])
