"""CommonCrawl recipe (CCNet / RedPajama / FineWeb order): WARC → extract → LID → heuristics.

Perplexity and the classifiers come after the heuristics (cheap first).  Once every input is done, the corpus
stages: unique ids, URL dedup, MinHash document dedup, semantic dedup (off by default: dedup/semantic.py), then
LLaMA-3 line dedup (lines seen more than 6 times per bucket of 30M documents, counted across all inputs;
dedup/line_stage.py).  The per-input ``line_dedup`` step between extraction and LID
(CCNet's place) is off by default: within one run it can only count per input (see dedup/lines.py).
"""

from __future__ import annotations

from typing import Any

from classifiers.domains import DomainRules, DomainScore, exempt
from classifiers.gate import gate_model_filters
from classifiers.steps import Perplexity, RobertaQuality, TopicScore, WikiRefScore
from classifiers.token_kl import TokenKL
from dedup.line_stage import LineDedupStage
from dedup.lines import LineDedup
from dedup.stages import MinHashDedupStage, SemanticDedupStage, UniqueIdsStage, UrlDedupStage
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
from pipelines.sources.compose import assemble, upgrade_config

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
    # LLaMA-3: what the page is about (a score, never a filter): mixtures cap or down-weight topics by it; before the
    # quality cascade, so the pages its filters reject keep their topic too
    "topics": TopicScore,
    # quality models (issue 4), a cascade: cheap KenLM + fastText first, RoBERTa only on what they keep
    "perplexity": Perplexity,
    "ppl_filter": ScoreFilter,
    "wikiref": WikiRefScore,
    "wikiref_filter": ScoreFilter,
    "roberta": RobertaQuality,
    "quality_filter": ScoreFilter,
}


#: the steps that use the quality models (shipped in classifiers/default_models, or your own from `make models`)
MODEL_STEPS = ("topics", "perplexity", "ppl_filter", "wikiref", "wikiref_filter", "roberta", "quality_filter")


def without_models() -> dict[str, Any]:
    """A config override that switches the model steps off (tests and benchmarks of the other steps)."""
    return {"steps": {name: {"enabled": False} for name in MODEL_STEPS}}


#: corpus stages, in this order, once every input is done (LLaMA-3's order: URL dedup, document MinHash, lines)
CORPUS_STAGES = {
    # WARC record ids are unique per source: the same record in two files (a re-crawl copy) keeps one document
    "unique_ids": UniqueIdsStage,
    # LLaMA-3 URL-level dedup: several captures of one page keep the most recent
    "url_dedup": UrlDedupStage,
    # document-level near-dup removal after filtering
    "minhash": MinHashDedupStage,
    # LLaMA-3 semantic dedup (SemDeDup; off in the default config: see there)
    "semantic_dedup": SemanticDedupStage,
    # then LLaMA-3 line dedup across inputs
    "line_dedup": LineDedupStage,
}


def with_language_partitions(config: dict[str, Any]) -> dict[str, Any]:
    """``partition_by: auto`` in the dedup stages: ``lang`` when ``lang_filter`` keeps more than one language
    (``[all]``, a list), so pages in different languages never dedup each other; else no partition."""
    config = upgrade_config("commoncrawl", config, CORPUS_STAGES)
    lang_filter = (config.get("steps") or {}).get("lang_filter") or {}
    languages = list(lang_filter.get("languages") or [])
    several = lang_filter.get("enabled", True) is False or len(languages) != 1 or languages == ["all"]
    stages = dict(config.get("corpus_stages") or {})
    for name in ("minhash", "semantic_dedup", "line_dedup"):
        section = dict(stages.get(name) or {})
        if section.get("partition_by") == "auto":
            section["partition_by"] = "lang" if several else None
            stages[name] = section
    return {**config, "corpus_stages": stages}


def build_recipe(config: dict[str, Any]) -> Recipe:
    # `enabled: auto` model filters: on only when the model meets its quality bar, else off with a WARNING
    config = gate_model_filters(config, "commoncrawl")
    config = with_language_partitions(config)
    recipe = assemble("commoncrawl", WarcReader, STEPS, config, CORPUS_STAGES)
    exempt(recipe.steps, list(STEPS))  # code and math pages skip the prose rules (steps.domains.exempt)
    return recipe
