"""CommonCrawl recipe (CCNet / RedPajama / FineWeb order): WARC → extract → LID → heuristics.

Perplexity and the classifiers come after the heuristics (cheap first).  Once every input is done, two corpus
stages: MinHash document dedup, then LLaMA-3 line dedup (lines seen more than 6 times per bucket of 30M documents,
counted across all inputs; dedup/line_stage.py).  The per-input ``line_dedup`` step between extraction and LID
(CCNet's place) is off by default: within one run it can only count per input (see dedup/lines.py).
"""

from __future__ import annotations

from typing import Any

from classifiers.domains import DomainRules, DomainScore, exempt
from classifiers.gate import gate_model_filters
from classifiers.steps import Perplexity, RobertaQuality, WikiRefScore
from classifiers.token_kl import TokenKL
from dedup.line_stage import stage_from_config as line_stage_from_config
from dedup.lines import LineDedup
from dedup.stages import stage_from_config, unique_ids_stage, url_dedup_stage
from filters.dirty_words import DirtyWords
from filters.extract import ExtractText
from filters.heuristics import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from filters.langid import LanguageFilter, LanguageID
from filters.pii import PIIRedact
from filters.robots import RobotsOptOut
from filters.thresholds import ScoreFilter
from filters.urls import UrlCategory
from pipelines.core.recipe import Recipe
from pipelines.readers.warc import WarcReader
from pipelines.sources.compose import assemble

STEPS = {
    # LLaMA-3 / Llama 2: unsafe and adult domains first (cheap: the URL only, before any HTML is parsed)
    "url_category": UrlCategory,
    "url": ScoreFilter,
    "robots": RobotsOptOut,  # AFM: robots.txt opt-outs from a snapshot you provide (off by default)
    "extract": ExtractText,
    # LLaMA-3 "domain-specific pipelines": code_prob, math_prob and domain on the extracted text; code and math
    # pages skip the prose rules named under its `exempt` and go through domain_rules instead
    "domains": DomainScore,
    "domain_rules": DomainRules,
    "line_dedup": LineDedup,  # per-input line dedup (off by default; the corpus stage is LLaMA-3's rule)
    "lid": LanguageID,
    "lang_filter": LanguageFilter,
    "gopher_rep": GopherRepetition,
    "gopher": GopherQuality,
    "c4": C4Quality,
    "fineweb": FineWebQuality,
    # LLaMA-3: the share of words on a dirty-word list, for adult pages the block lists miss
    "dirty_words": DirtyWords,
    "dirty_filter": ScoreFilter,
    # LLaMA-3: KL divergence of the page's token distribution from the reference corpus (token salad, spam)
    "token_kl": TokenKL,
    "token_kl_filter": ScoreFilter,
    # personal data replaced in the text that is kept; pages dominated by it (directories) rejected
    "pii": PIIRedact,
    "pii_filter": ScoreFilter,
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
    # WARC record ids are unique per source: the same record in two files (a re-crawl copy) keeps one document
    unique = dict(config.get("unique_ids") or {})
    ids = unique_ids_stage(**unique) if unique.pop("enabled", True) else None
    # LLaMA-3 URL-level dedup: several captures of one page keep the most recent
    by_url = dict(config.get("url_dedup") or {})
    urls = url_dedup_stage(**by_url) if by_url.pop("enabled", True) else None
    minhash = stage_from_config(config.get("minhash"))  # document-level near-dup removal after filtering
    lines = line_stage_from_config(config.get("line_dedup"))  # then LLaMA-3 line dedup across inputs
    stages = [s for s in (ids, urls, minhash, lines) if s is not None]
    recipe = assemble("commoncrawl", WarcReader, STEPS, config, corpus_stages=stages)
    exempt(recipe.steps, list(STEPS))  # code and math pages skip the prose rules (steps.domains.exempt)
    return recipe
