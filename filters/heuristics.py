"""Heuristic quality rules (Gopher repetition, Gopher quality, C4, FineWeb): datatrove's filters, wrapped as batch steps.

The rules themselves are datatrove's, called unchanged.  What the wrapper adds:

* one word tokenization per document instead of three: Gopher repetition, Gopher quality and FineWeb each split the
  same text with spaCy; they accept a ``WordTokenizer`` object as ``language``, and we hand them the shared caching
  one of ``filters/patches/word_tokenizer.py`` (it reaches into datatrove's tokenizer, so it lives with the patches);
* ``mode: tag`` keeps every row and records the rule's verdict in ``<name>_reason`` (null = passes), so a mixture can
  select e.g. the C4-passing slice of CommonCrawl later in DuckDB without recomputing;
* reasons are namespaced (``gopher_rep:dup_line_frac``), and a document that crashes a rule is rejected, not fatal.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pyarrow as pa

from filters.patches.word_tokenizer import clear_shared_tokenizer, shared_word_tokenizer
from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)


@dataclass
class DatatroveRule(Step):
    """Runs one datatrove filter over each row.  ``params`` go to the datatrove class unchanged."""

    #: dotted name of the datatrove filter class
    filter_class: ClassVar[str] = ""
    #: reason prefix and default step name
    prefix: ClassVar[str] = ""

    params: dict[str, Any] = field(default_factory=dict)
    #: drop: reject failing rows; tag: keep all rows, write the verdict to ``<name>_reason``
    mode: Literal["drop", "tag"] = "drop"
    language: str = "en"

    @property
    def kind(self) -> str:  # type: ignore[override]
        """``drop`` rejects rows (a filter); ``tag`` only adds the ``<name>_reason`` column (a score)."""
        return "score" if self.mode == "tag" else "filter"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("drop", "tag"):
            raise ValueError(f"{self.name}: mode must be 'drop' or 'tag', got {self.mode!r}")
        accepted = set(inspect.signature(self._datatrove_class().__init__).parameters) - {
            "self",
            "exclusion_writer",
        }
        unknown = sorted(set(self.params) - accepted)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown datatrove parameter(s) {unknown}; accepted: {sorted(accepted)}"
            )

    @classmethod
    def _datatrove_class(cls) -> type:
        module, _, name = cls.filter_class.rpartition(".")
        return getattr(__import__(module, fromlist=[name]), name)

    def adds(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_reason": pa.string()} if self.mode == "tag" else {}

    def setup(self) -> None:
        params = dict(self.params)
        cls = self._datatrove_class()
        if "language" in inspect.signature(cls.__init__).parameters:
            params["language"] = shared_word_tokenizer(self.language)
        self._rule = cls(**params)

    def start_input(self, path: str) -> None:
        # the cache serves the rules that split the same document; an input never reuses another input's splits
        # (a run over copies of the same pages, like the benchmark's, would otherwise skip most tokenization)
        clear_shared_tokenizer(self.language)

    def reason(self, raw: str | None) -> str:
        raw = (raw or "failed").removeprefix("gopher_")
        return f"{self.prefix}:{raw}"

    def judge(self, doc_id: str, text: str) -> tuple[str | None, str]:
        """(reason or None, text after the rule: only C4 with rewrite_text changes it)."""
        from datatrove.data import Document
        from datatrove.pipeline.filters.base_filter import get_filter_result

        doc = Document(text=text, id=doc_id)
        try:
            ok, why = get_filter_result(self._rule.filter(doc))
        except Exception as exc:  # noqa: BLE001 - a rule crashing on one document rejects that document
            log.debug("%s failed on %s: %s", self.name, doc_id, exc)
            return f"{self.prefix}:error_{type(exc).__name__}", text
        return (None if ok else self.reason(why)), doc.text

    def process(self, batch: pa.Table) -> StepResult:
        verdicts = [
            self.judge(i, t) for i, t in zip(batch.column("id").to_pylist(), texts(batch), strict=True)
        ]
        reasons = [v[0] for v in verdicts]
        if self.mode == "tag":
            return StepResult(set_column(batch, f"{self.name}_reason", reasons, pa.string()))
        return StepResult(batch, reasons)


@dataclass
class GopherRepetition(DatatroveRule):
    filter_class: ClassVar[str] = "datatrove.pipeline.filters.GopherRepetitionFilter"
    prefix: ClassVar[str] = "gopher_rep"
    #: filters/patches/gopher_speedups.py: datatrove's n-gram helpers swapped for result-identical faster ones
    fast_ngrams: bool = True

    def setup(self) -> None:
        if self.fast_ngrams:
            from filters.patches import gopher_speedups

            gopher_speedups.install()
        super().setup()


@dataclass
class GopherQuality(DatatroveRule):
    filter_class: ClassVar[str] = "datatrove.pipeline.filters.GopherQualityFilter"
    prefix: ClassVar[str] = "gopher"


@dataclass
class FineWebQuality(DatatroveRule):
    filter_class: ClassVar[str] = "datatrove.pipeline.filters.FineWebQualityFilter"
    prefix: ClassVar[str] = "fineweb"


@dataclass
class C4Quality(DatatroveRule):
    """C4's rules.  datatrove's C4 filter also deletes failing lines from the text; ``rewrite_text`` applies that
    deletion to kept rows (a transform, counted as ``changed``); off by default, the text stays as extracted."""

    filter_class: ClassVar[str] = "datatrove.pipeline.filters.C4QualityFilter"
    prefix: ClassVar[str] = "c4"
    rewrite_text: bool = False

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "transform" if self.rewrite_text else super().kind

    def process(self, batch: pa.Table) -> StepResult:
        if not self.rewrite_text:
            return super().process(batch)
        old = texts(batch)
        verdicts = [self.judge(i, t) for i, t in zip(batch.column("id").to_pylist(), old, strict=True)]
        reasons = [v[0] for v in verdicts]
        new = [v[1] if v[0] is None else o for v, o in zip(verdicts, old, strict=True)]
        changed = sum(1 for a, b in zip(old, new, strict=True) if a != b)
        batch = set_column(batch, "text", new, pa.large_string())
        if self.mode == "tag":
            return StepResult(set_column(batch, f"{self.name}_reason", reasons, pa.string()), None, changed)
        return StepResult(batch, reasons, changed)
