"""Readers and recipes: what a source is made of.

A reader turns one input (a file, or a folder for code repositories) into document rows; one input is the unit of
work and of resume.  A recipe is plain composition: a reader, a list of steps, and corpus-level stages that run once
all inputs are done (dedup across the whole source).  Each ``pipelines/sources/<source>.py`` exposes ``build_recipe(config)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.discovery import discover
from pipelines.core.schema import CORE_SCHEMA, extend_schema
from pipelines.core.steps import Step


@dataclass(frozen=True)
class Skip:
    """A record the reader passed over (not a document: a revisit, an image...), counted by reason."""

    reason: str
    count: int = 1


class ReadError(Exception):
    """An input that cannot be read further; the runner records it and keeps what was read before."""


@dataclass
class Reader:
    """Base reader.  ``read`` yields document dicts (core columns + declared extras) or :class:`Skip`.

    A dict may carry ``reason`` to reject it at once (it is still written, to ``rejected/``).
    """

    #: glob patterns (relative to a folder given as INPUT) that this reader accepts
    patterns: ClassVar[tuple[str, ...]] = ("**/*",)
    #: rows per batch handed to the steps
    batch_size: int = 256
    #: whether ``read`` accepts an ``s3://``/``gs://`` URI itself (streaming it through ``pipelines.core.storage``);
    #: for other readers the runner downloads each such input to a local temporary file first
    reads_uris: ClassVar[bool] = False

    def adds(self) -> dict[str, pa.DataType]:
        return {}

    def discover(self, spec: str) -> list[str]:
        """Inputs named by ``spec``: a file, a folder (searched with :attr:`patterns`) or a glob."""
        return discover_files(spec, self.patterns)

    def read(self, path: str) -> Iterator[Mapping[str, Any] | Skip]:  # pragma: no cover - abstract
        raise NotImplementedError


def discover_files(spec: str, patterns: Sequence[str]) -> list[str]:
    """Resolve INPUT: a file, a directory (recursive, by patterns) or a glob; sorted, absolute, deduplicated.

    ``s3://`` / ``gs://`` URIs name an object, a prefix or a glob the same way (``pipelines.core.discovery``).
    """
    return discover(spec, patterns)


@dataclass
class Recipe:
    source: str
    reader: Reader
    steps: list[Step]
    corpus_stages: list[CorpusStage] = field(default_factory=list)

    def schema(self) -> pa.Schema:
        """The schema of kept documents: core columns, the reader's extras, then each step's additions."""
        schema = extend_schema(CORE_SCHEMA, self.reader.adds())
        for step in self.steps:
            schema = extend_schema(schema, step.adds())
        return schema

    def environment_problems(self) -> list[str]:
        """What each step's :meth:`Step.check` finds missing in this environment (empty: ready to run)."""
        problems = []
        for step in self.steps:
            try:
                step.check()
            except (FileNotFoundError, ImportError) as exc:
                problems.append(f"step {step.name!r}: {exc}")
        return problems

    def validate(self) -> None:
        """Check, before reading anything, that every step finds the columns it reads."""
        schema = extend_schema(CORE_SCHEMA, self.reader.adds())
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.source}: step names must be unique, got {names}")
        for step in self.steps:
            missing = [c for c in step.reads if c not in schema.names]
            if missing:
                raise ValueError(
                    f"recipe {self.source}: step {step.name!r} reads {missing}, which no earlier step adds"
                )
            schema = extend_schema(schema, step.adds())
