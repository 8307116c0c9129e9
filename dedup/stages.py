"""Dedup as corpus stages of a recipe (``Recipe.corpus_stages``): run once every input of a source is written.

Removed documents move from ``<source>/docs/`` to ``<source>/rejected/`` with a reason (``dedup:minhash``,
``dedup:exact_md5``, ``dedup:book``) and their cluster id in ``meta.dedup_cluster``; the per-input stats are
recounted so ``read = kept + rejected`` holds.  The clusters are written to ``<source>/duplicates/<stage>.parquet``.
A stage that already ran over the current docs (same files, sizes, mtimes) is skipped.

Use in a recipe::

    from dedup.stages import ExactDedupStage, MinHashDedupStage, books_dedup_stage
    assemble("github", Reader, STEPS, config, corpus_stages=[ExactDedupStage(mode="md5")])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from dedup.corpus import build_inputs, fingerprint
from dedup.minhash import MinHashConfig
from dedup.removal import move_to_rejected, public_duplicates
from dedup.workflow import DedupResult, ExactConfig, find_exact_duplicates, find_near_duplicates
from pipelines.core.layout import write_json_atomic


def _apply(name: str, source_dir: str, result_fn: Any, references: list[str]) -> dict[str, Any]:
    docs = os.path.join(source_dir, "docs")
    state_path = os.path.join(source_dir, "_dedup", f"{name}.json")
    current = fingerprint(build_inputs([docs], references), {"stage": name})
    if os.path.exists(state_path):
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("fingerprint") == current:
            return {**state["stats"], "up_to_date": True}
    res: DedupResult = result_fn(docs, os.path.join(source_dir, "_dedup"))
    moved = move_to_rejected(res.duplicates, res.files, source_dir, rejected_by=name)
    from dedup.corpus import write_parquet_atomic

    write_parquet_atomic(
        public_duplicates(res.duplicates, res.files),
        os.path.join(source_dir, "duplicates", f"{name}.parquet"),
    )
    stats = {k: v for k, v in res.stats.items() if k != "work"} | moved
    after = fingerprint(build_inputs([docs], references), {"stage": name})
    write_json_atomic(state_path, {"fingerprint": after, "stats": stats})
    return stats


@dataclass
class MinHashDedupStage:
    """Near-duplicate removal over a source's written docs (settings: :class:`MinHashConfig` fields)."""

    name: str = "minhash"
    reason: str = "dedup:minhash"
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self) -> MinHashConfig:
        return MinHashConfig(**self.settings)

    def run(self, source_dir: str) -> dict[str, Any]:
        cfg = self.config()
        return _apply(
            self.name,
            source_dir,
            lambda docs, work: find_near_duplicates([docs], work, cfg, self.reason),
            cfg.references,
        )


@dataclass
class ExactDedupStage:
    """Exact document dedup: ``mode="md5"`` (file content, RedPajama's GitHub rule) or ``"normalized"`` text."""

    mode: str = "md5"
    name: str = "exact"
    score_column: str | None = None
    references: list[str] = field(default_factory=list)

    def run(self, source_dir: str) -> dict[str, Any]:
        cfg = ExactConfig(mode=self.mode, score_column=self.score_column, references=self.references)
        return _apply(
            self.name,
            source_dir,
            lambda docs, work: find_exact_duplicates([docs], work, cfg),
            self.references,
        )


def books_dedup_stage(
    threshold: float = 0.9, score_column: str | None = None, name: str = "book_dedup", **settings: Any
) -> MinHashDedupStage:
    """Book-level near-duplicates (LLaMA-1: >=90% similar), always verified by exact Jaccard of 5-gram sets.

    Two editions of a book (other front matter, line wrapping, a few corrections) collapse to one; different
    books by the same author do not.  Bands x rows are chosen from the threshold.
    """
    cfg = {
        "threshold": threshold,
        "verify": True,
        "bands": 0,
        "rows": 0,
        "score_column": score_column,
        "batch_rows": 16,
        **settings,
    }
    return MinHashDedupStage(name=name, reason="dedup:book", settings=cfg)


def stage_from_config(section: dict[str, Any] | None) -> MinHashDedupStage | None:
    """A MinHash stage from a config section (``enabled: false`` → None)."""
    section = dict(section or {})
    if not section.pop("enabled", True):
        return None
    MinHashConfig(**section)  # validate early: unknown keys fail here with the field names
    return MinHashDedupStage(settings=section)
