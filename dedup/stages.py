"""Dedup as corpus stages of a recipe (``corpus_stages:`` in a source config), run once every input is written.

Removed documents move from ``<source>/docs/`` to ``<source>/rejected/`` with a reason (``dedup:minhash``,
``dedup:exact_md5``, ``dedup:book``, ``dedup:duplicate_id``, ``dedup:url``, ``dedup:semantic``) and their cluster id in
``meta.dedup_cluster``; the per-input stats are recounted so ``read = kept + rejected`` holds.  The clusters are
written to ``<source>/duplicates/<stage>.parquet``.  Skipping a stage that is up to date and resuming one that was
killed is :func:`pipelines.core.corpus_stage.run_stage`'s work (the passes resume from their markers in a work
folder named from the listing the stage started on, the removal from its per-file markers).

Use in a recipe (``pipelines/sources/<source>.py``)::

    CORPUS_STAGES = {"exact_md5": ExactDedupStage, "minhash": MinHashDedupStage}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from dedup.incremental import run_indexed
from dedup.minhash import MinHashConfig
from dedup.removal import move_to_rejected, publish_task
from dedup.semantic import SemanticConfig, find_semantic_duplicates, publish_pairs
from dedup.workflow import DedupResult, ExactConfig, find_exact_duplicates, find_near_duplicates
from pipelines.core import storage
from pipelines.core.corpus_stage import CorpusStage, InputFile
from pipelines.core.executor import Executor, get_executor

#: settings that say how a stage runs, not what it finds (left out of its fingerprint)
_EXECUTION = ("executor", "workers", "batch_rows")


class RemovalStage(CorpusStage):
    """A stage that detects duplicate clusters, then removes all but one member of each: subclasses give
    :meth:`config` (a settings dataclass with ``executor`` and ``workers``) and :meth:`detect` (a new dedup, e.g.
    semantic, only writes those); the removal and the clusters file are shared."""

    def config(self) -> Any:
        raise NotImplementedError

    def validate(self) -> None:
        self.config()

    def identity(self) -> dict[str, Any]:
        ident = {k: v for k, v in dataclasses.asdict(self.config()).items() if k not in _EXECUTION}
        return {**ident, "reason": self.reason}

    def executor(self) -> Executor:
        cfg = self.config()
        return get_executor(cfg.executor, cfg.workers)

    def detect(self, files: list[InputFile], work_root: str, executor: Executor) -> DedupResult:
        raise NotImplementedError

    def run(self, source_dir: str, files: list[InputFile], executor: Executor) -> dict[str, Any]:
        res = self.detect(files, os.path.join(source_dir, "_dedup"), executor)
        return {k: v for k, v in res.stats.items() if k != "work"} | self.remove(res, source_dir, executor)

    def remove(self, res: DedupResult, source_dir: str, executor: Executor) -> dict[str, Any]:
        """Removed rows to rejected/, the clusters to ``duplicates/<name>.parquet``."""
        moved = move_to_rejected(res, source_dir, self.name, executor)
        clusters = os.path.join(source_dir, "duplicates", f"{self.name}.parquet")
        executor.map(publish_task, [(res.work, res.files, clusters)])
        return moved


@dataclass
class MinHashDedupStage(RemovalStage):
    """Near-duplicate removal over a source's written docs (settings: :class:`MinHashConfig` fields)."""

    name: str = "minhash"
    reason: str = "dedup:minhash"
    in_place = True  # reads and writes through the storage object: runs on s3:// without a local copy
    settings: dict[str, Any] = field(default_factory=dict)
    #: keep an index of the survivors' band keys, so that a run that adds docs files (cron) deduplicates only
    #: them against it (:mod:`dedup.incremental`); earlier survivors then always stay
    incremental: bool = True
    #: most index generations (one per incremental run); below it the newest are merged as a binary counter
    #: (about log2(index / increment) generations, :func:`dedup.minhash_index.merge_from`)
    index_generations_max: int = 8

    @property
    def references(self) -> list[str]:  # type: ignore[override]
        return list(self.config().references)

    def config(self) -> MinHashConfig:
        return MinHashConfig(**self.settings)

    def detect(self, files: list[InputFile], work_root: str, executor: Executor) -> DedupResult:
        return find_near_duplicates([], work_root, self.config(), self.reason, executor, files)

    def run(self, source_dir: str, files: list[InputFile], executor: Executor) -> dict[str, Any]:
        if not self.incremental:
            return super().run(source_dir, files, executor)

        def remove(res: DedupResult) -> dict[str, Any]:
            return self.remove(res, source_dir, executor)

        cfg = self.config()
        return run_indexed(source_dir, files, cfg, self.reason, executor, remove, self.index_generations_max)


@dataclass
class BookDedupStage(MinHashDedupStage):
    """Book-level near-duplicates (LLaMA-1: >=90% similar), always verified by exact Jaccard of 5-gram sets.

    Two editions of a book (other front matter, line wrapping, a few corrections) collapse to one; different
    books by the same author do not.  Bands x rows are chosen from the threshold unless given.
    """

    name: str = "book_dedup"
    reason: str = "dedup:book"

    def __post_init__(self) -> None:
        defaults = {
            "threshold": 0.9,
            "verify": True,
            "bands": 0,
            "rows": 0,
            "score_column": None,
            "batch_rows": 16,
        }
        self.settings = {**defaults, **self.settings}


@dataclass
class ExactDedupStage(RemovalStage):
    """Documents with equal keys keep one: ``mode="md5"`` (file content, RedPajama's GitHub rule), ``"normalized"``
    text, or ``"url"`` (normalised URLs); ``settings`` may name the hashed ``key_column`` (default: the text)."""

    mode: str = "md5"
    name: str = "exact"
    in_place = True  # reads and writes through the storage object: runs on s3:// without a local copy
    score_column: str | None = None
    references: list[str] = field(default_factory=list)
    #: the rejection reason (default ``dedup:exact_md5`` / ``dedup:exact``)
    reason: str | None = None  # type: ignore[assignment]
    #: further :class:`ExactConfig` fields (key_column, score_order, partitions, tasks, executor, workers)
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self) -> ExactConfig:
        return ExactConfig(
            mode=self.mode, score_column=self.score_column, references=self.references, **self.settings
        )

    def detect(self, files: list[InputFile], work_root: str, executor: Executor) -> DedupResult:
        return find_exact_duplicates([], work_root, self.config(), self.reason, executor, files)


@dataclass
class UniqueIdsStage(ExactDedupStage):
    """Ids unique per source: documents that share an id (the same WARC record in two files, a page in two copies of a
    dump) keep one copy, the longest text, then the one in the first file; the others go with ``dedup:duplicate_id``."""

    name: str = "unique_ids"
    reason: str | None = "dedup:duplicate_id"
    settings: dict[str, Any] = field(default_factory=lambda: {"key_column": "id"})


@dataclass
class UrlDedupStage(ExactDedupStage):
    """URL-level dedup (LLaMA-3): captures of one page (equal :func:`dedup.urls.normalize_url`) keep the most recent
    (``score_column``, a WARC-Date), then the longest text, then the smallest id; the others go with ``dedup:url``."""

    mode: str = "url"
    name: str = "url_dedup"
    score_column: str | None = "warc_date"
    reason: str | None = "dedup:url"
    settings: dict[str, Any] = field(default_factory=lambda: {"key_column": "url", "score_order": "max"})


@dataclass
class SemanticDedupStage(RemovalStage):
    """SemDeDup (LLaMA-3): documents whose embeddings are within a cosine threshold keep one (settings:
    :class:`dedup.semantic_embed.SemanticConfig` fields).  Besides ``duplicates/<name>.parquet`` it writes
    ``duplicates/<name>.pairs.parquet``: every pair from the record threshold with its cosine, so a threshold can
    be re-chosen in DuckDB."""

    name: str = "semantic_dedup"
    reason: str = "dedup:semantic"
    in_place = True  # reads and writes through the storage object: runs on s3:// without a local copy
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> list[str]:  # type: ignore[override]
        return list(self.config().references)

    def config(self) -> SemanticConfig:
        return SemanticConfig(**self.settings)

    def identity(self) -> dict[str, Any]:
        return {**self.config().identity(), "reason": self.reason}  # the model's files too

    def detect(self, files: list[InputFile], work_root: str, executor: Executor) -> DedupResult:
        res = find_semantic_duplicates(files, work_root, self.config(), self.reason, executor)
        source_dir = storage.dirname(work_root.rstrip("/"))  # work_root is <source>/_dedup
        publish_pairs(res.work, storage.join(source_dir, "duplicates", f"{self.name}.pairs.parquet"))
        return res
