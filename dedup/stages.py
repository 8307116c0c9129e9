"""Dedup as corpus stages of a recipe (``Recipe.corpus_stages``): run once every input of a source is written.

Removed documents move from ``<source>/docs/`` to ``<source>/rejected/`` with a reason (``dedup:minhash``,
``dedup:exact_md5``, ``dedup:book``) and their cluster id in ``meta.dedup_cluster``; the per-input stats are
recounted so ``read = kept + rejected`` holds.  The clusters are written to ``<source>/duplicates/<stage>.parquet``.
A stage that already ran over the current docs (same files, sizes, mtimes) is skipped; one killed at any point
resumes (the passes from their markers, the removal from the listing recorded before it started).

Use in a recipe::

    from dedup.stages import ExactDedupStage, MinHashDedupStage, books_dedup_stage
    assemble("github", Reader, STEPS, config, corpus_stages=[ExactDedupStage(mode="md5")])
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dedup.corpus import InputFile, build_inputs, fingerprint
from dedup.minhash import MinHashConfig
from dedup.removal import move_to_rejected, publish_task
from dedup.semantic import SemanticConfig, find_semantic_duplicates, publish_pairs
from dedup.workflow import DedupResult, ExactConfig, find_exact_duplicates, find_near_duplicates
from pipelines.core.executor import Executor, get_executor
from pipelines.core.layout import write_json_atomic

#: detection over the listed input files, in a work root: ``(files, work_root) -> DedupResult``
Detect = Callable[[list[InputFile], str], DedupResult]


def _read(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _apply(
    name: str, source_dir: str, detect: Detect, references: list[str], executor: Executor
) -> dict[str, Any]:
    """fingerprint -> skip -> detect -> removal -> state, resumable at every point.

    Before removal rewrites ``docs/``, the listing the detection ran on (paths, sizes, mtimes) is recorded in
    ``_dedup/<name>.removing.json``; a rerun after a kill finds it, rebuilds the same work folder name from it (so no
    pass runs again) and finishes the removal tasks that have no marker.
    """
    docs = os.path.join(source_dir, "docs")
    state_path = os.path.join(source_dir, "_dedup", f"{name}.json")
    removing_path = os.path.join(source_dir, "_dedup", f"{name}.removing.json")
    listed = build_inputs([docs], references)
    current = fingerprint(listed, {"stage": name})
    state = _read(state_path)
    if state and state.get("fingerprint") == current:
        return {**state["stats"], "up_to_date": True}
    removing = _read(removing_path)
    files = [InputFile(**f) for f in removing["files"]] if removing else listed
    res = detect(files, os.path.join(source_dir, "_dedup"))
    if not removing:
        write_json_atomic(removing_path, {"work": res.work, "files": [dataclasses.asdict(f) for f in files]})
    moved = move_to_rejected(res, source_dir, name, executor)
    executor.map(
        publish_task, [(res.work, res.files, os.path.join(source_dir, "duplicates", f"{name}.parquet"))]
    )
    stats = {k: v for k, v in res.stats.items() if k != "work"} | moved
    after = build_inputs([docs], references)
    same = [f.path for f in after] == [f.path for f in files]
    # inputs added since the detection started were not deduplicated: leave the state stale so a rerun does them
    write_json_atomic(
        state_path, {"fingerprint": fingerprint(after, {"stage": name}) if same else "", "stats": stats}
    )
    os.remove(removing_path)
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
        executor = get_executor(cfg.executor, cfg.workers)
        return _apply(
            self.name,
            source_dir,
            lambda files, work: find_near_duplicates([], work, cfg, self.reason, executor, files),
            cfg.references,
            executor,
        )


@dataclass
class ExactDedupStage:
    """Documents with equal keys keep one: ``mode="md5"`` (file content, RedPajama's GitHub rule), ``"normalized"``
    text, or ``"url"`` (normalised URLs); ``settings`` may name the hashed ``key_column`` (default: the text)."""

    mode: str = "md5"
    name: str = "exact"
    score_column: str | None = None
    references: list[str] = field(default_factory=list)
    #: the rejection reason (default ``dedup:exact_md5`` / ``dedup:exact``)
    reason: str | None = None
    #: further :class:`ExactConfig` fields (key_column, score_order, partitions, tasks, executor, workers)
    settings: dict[str, Any] = field(default_factory=dict)

    def run(self, source_dir: str) -> dict[str, Any]:
        cfg = ExactConfig(
            mode=self.mode, score_column=self.score_column, references=self.references, **self.settings
        )
        executor = get_executor(cfg.executor, cfg.workers)
        return _apply(
            self.name,
            source_dir,
            lambda files, work: find_exact_duplicates([], work, cfg, self.reason, executor, files),
            self.references,
            executor,
        )


def unique_ids_stage(**settings: Any) -> ExactDedupStage:
    """Ids unique per source: documents that share an id (the same WARC record in two files, a page in two copies of a
    dump) keep one copy, the longest text, then the one in the first file; the others go with ``dedup:duplicate_id``."""
    return ExactDedupStage(
        mode="md5", name="unique_ids", reason="dedup:duplicate_id", settings={"key_column": "id", **settings}
    )


def url_dedup_stage(date_column: str = "warc_date", **settings: Any) -> ExactDedupStage:
    """URL-level dedup (LLaMA-3): captures of one page (equal :func:`dedup.urls.normalize_url`) keep the most recent
    (``date_column``, a WARC-Date), then the longest text, then the smallest id; the others go with ``dedup:url``."""
    return ExactDedupStage(
        mode="url",
        name="url_dedup",
        score_column=date_column,
        reason="dedup:url",
        settings={"key_column": "url", "score_order": "max", **settings},
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


@dataclass
class SemanticDedupStage:
    """SemDeDup (LLaMA-3): documents whose embeddings are within a cosine threshold keep one
    (settings: :class:`dedup.semantic_embed.SemanticConfig` fields).  Besides ``duplicates/<name>.parquet`` it
    writes ``duplicates/<name>.pairs.parquet``: every pair from the record threshold with its cosine, so a
    threshold can be re-chosen in DuckDB."""

    name: str = "semantic_dedup"
    reason: str = "dedup:semantic"
    settings: dict[str, Any] = field(default_factory=dict)

    def run(self, source_dir: str) -> dict[str, Any]:
        cfg = SemanticConfig(**self.settings)
        executor = get_executor(cfg.executor, cfg.workers)
        pairs = os.path.join(source_dir, "duplicates", f"{self.name}.pairs.parquet")

        def detect(files: list[InputFile], work: str) -> DedupResult:
            res = find_semantic_duplicates(files, work, cfg, self.reason, executor)
            publish_pairs(res.work, pairs)
            return res

        return _apply(self.name, source_dir, detect, cfg.references, executor)


def _from_section(section: dict[str, Any] | None, enabled: bool, config: Any, stage: Any) -> Any:
    """``stage(settings=...)`` from a config section (``enabled`` when it says nothing; false → None), its
    settings validated early by ``config``: unknown keys fail here with the field names."""
    section = dict(section or {})
    if not section.pop("enabled", enabled):
        return None
    config(**section)
    return stage(settings=section)


def semantic_stage_from_config(section: dict[str, Any] | None) -> SemanticDedupStage | None:
    """A semantic dedup stage from a config section (absent or ``enabled: false`` → None)."""
    return _from_section(section, False, SemanticConfig, SemanticDedupStage)


def stage_from_config(section: dict[str, Any] | None) -> MinHashDedupStage | None:
    """A MinHash stage from a config section (``enabled: false`` → None)."""
    return _from_section(section, True, MinHashConfig, MinHashDedupStage)
