"""Heuristic quality rules (Gopher repetition, Gopher quality, C4, FineWeb): datatrove's filters, wrapped as batch steps.

The rules themselves are datatrove's, called unchanged.  What the wrapper adds:

* one word tokenization per document instead of three: Gopher repetition, Gopher quality and FineWeb each split the
  same text with spaCy; they accept a ``WordTokenizer`` object as ``language``, and we hand them the shared caching
  one of ``filters/patches/word_tokenizer.py`` (it reaches into datatrove's tokenizer, so it lives with the patches);
* ``mode: tag`` keeps every row and records the rule's verdict in ``<name>_reason`` (null = passes), so a mixture can
  select e.g. the C4-passing slice of CommonCrawl later in DuckDB without recomputing;
* reasons are namespaced (``gopher_rep:dup_line_frac``), and a document that crashes a rule is rejected, not fatal;
* rows are routed by their ``lang`` column: each language gets a word tokenizer suited to it (CJK and Thai are never
  split at spaces: filters/languages.py) and its own thresholds and stop words (``per_language``), e.g.
  ``gopher: {per_language: {ja: {min_avg_word_length: 1}}}``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pyarrow as pa

from filters.languages import check_languages, spacy_stop_words
from filters.patches.word_tokenizer import clear_shared_tokenizer, shared_word_tokenizer
from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)


@dataclass
class DatatroveRule(Step):
    """Runs one datatrove filter over each row.  ``params`` go to the datatrove class unchanged.

    Rows are grouped by their ``lang`` column (the LID step's): each language's rows are judged by a rule built
    with that language's word tokenizer (filters/languages.py) and ``params`` updated with ``per_language[lang]``;
    the reasons are the same for every language."""

    #: dotted name of the datatrove filter class
    filter_class: ClassVar[str] = ""
    #: reason prefix and default step name
    prefix: ClassVar[str] = ""

    params: dict[str, Any] = field(default_factory=dict)
    #: drop: reject failing rows; tag: keep all rows, write the verdict to ``<name>_reason``
    mode: Literal["drop", "tag"] = "drop"
    #: the language of rows without one (no ``language_column``, or a null in it)
    language: str = "en"
    #: datatrove parameters per lid.176 language, merged over ``params`` for that language's rows
    per_language: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the column that routes rows to their language; null: every row is judged as ``language``
    language_column: str | None = "lang"

    @property
    def kind(self) -> str:  # type: ignore[override]
        """``drop`` rejects rows (a filter); ``tag`` only adds the ``<name>_reason`` column (a score)."""
        return "score" if self.mode == "tag" else "filter"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("drop", "tag"):
            raise ValueError(f"{self.name}: mode must be 'drop' or 'tag', got {self.mode!r}")
        check_languages([self.language, *self.per_language], f"{self.name}.per_language")
        accepted = set(inspect.signature(self._datatrove_class().__init__).parameters) - {
            "self",
            "exclusion_writer",
            "language",
        }
        for where, params in [("params", self.params)] + [
            (f"per_language.{k}", v or {}) for k, v in self.per_language.items()
        ]:
            unknown = sorted(set(params) - accepted)
            if unknown:
                raise ValueError(
                    f"{self.name}.{where}: unknown datatrove parameter(s) {unknown}; accepted: {sorted(accepted)}"
                )

    @classmethod
    def _datatrove_class(cls) -> type:
        module, _, name = cls.filter_class.rpartition(".")
        return getattr(__import__(module, fromlist=[name]), name)

    def adds(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_reason": pa.string()} if self.mode == "tag" else {}

    def setup(self) -> None:
        self._rules: dict[str, Any] = {}

    def language_params(self, language: str) -> dict[str, Any]:
        """The datatrove parameters for ``language``'s rows: ``params`` updated with ``per_language``."""
        return {**self.params, **(self.per_language.get(language) or {})}

    def rule(self, language: str) -> Any:
        """The datatrove filter for ``language``, built once.  A missing tokenizer package raises (an environment
        error: the input fails and a rerun retries it), it never rejects the documents."""
        if language not in self._rules:
            cls = self._datatrove_class()
            tokenizer = None
            if "language" in inspect.signature(cls.__init__).parameters:
                tokenizer = shared_word_tokenizer(language)
            params = self.language_params(language)
            if tokenizer is not None:
                params["language"] = tokenizer
            self._rules[language] = cls(**params)
        return self._rules[language]

    def start_input(self, path: str) -> None:
        # the cache serves the rules that split the same document; an input never reuses another input's splits
        # (a run over copies of the same pages, like the benchmark's, would otherwise skip most tokenization)
        clear_shared_tokenizer()

    def reason(self, raw: str | None) -> str:
        raw = (raw or "failed").removeprefix("gopher_")
        return f"{self.prefix}:{raw}"

    def judge(self, doc_id: str, text: str, language: str | None = None) -> tuple[str | None, str]:
        """(reason or None, text after the rule: only C4 with rewrite_text changes it)."""
        from datatrove.data import Document
        from datatrove.pipeline.filters.base_filter import get_filter_result

        rule = self.rule(language or self.language)
        doc = Document(text=text, id=doc_id)
        try:
            ok, why = get_filter_result(rule.filter(doc))
        except (ImportError, MemoryError, OSError):
            raise  # the environment, not the document: fail the input so that a rerun retries it
        except Exception as exc:  # noqa: BLE001 - a rule crashing on one document rejects that document
            log.debug("%s failed on %s: %s", self.name, doc_id, exc)
            return f"{self.prefix}:error_{type(exc).__name__}", text
        return (None if ok else self.reason(why)), doc.text

    def verdicts(self, batch: pa.Table) -> list[tuple[str | None, str]]:
        """``judge`` for every row, one language after the other (each language's rule and tokenizer once)."""
        ids, docs = batch.column("id").to_pylist(), texts(batch)
        col = self.language_column
        langs = (
            [lang or self.language for lang in batch.column(col).to_pylist()]
            if col and col in batch.column_names
            else [self.language] * batch.num_rows
        )
        by_language: dict[str, list[int]] = {}
        for i, lang in enumerate(langs):
            by_language.setdefault(lang, []).append(i)
        out: list[tuple[str | None, str]] = [(None, "")] * batch.num_rows
        for lang in sorted(by_language):
            for i in by_language[lang]:
                out[i] = self.judge(ids[i], docs[i], lang)
        return out

    def process(self, batch: pa.Table) -> StepResult:
        reasons = [v[0] for v in self.verdicts(batch)]
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
    """Gopher's quality rules.  Gopher's stop words are English; another language's rows use ``stop_words`` from
    ``per_language`` or else spaCy's list for that language, and without either the stop-word rule is off for it."""

    filter_class: ClassVar[str] = "datatrove.pipeline.filters.GopherQualityFilter"
    prefix: ClassVar[str] = "gopher"

    def language_params(self, language: str) -> dict[str, Any]:
        params = super().language_params(language)
        if language != "en" and "stop_words" not in params:
            words = spacy_stop_words(language)
            if words:
                params["stop_words"] = list(words)
            else:
                log.info(
                    "%s: no stop words for %r (set per_language.%s.stop_words): rule off",
                    self.name,
                    language,
                    language,
                )
                params["min_stop_words"] = None
        return params


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
        verdicts = self.verdicts(batch)
        reasons = [v[0] for v in verdicts]
        new = [v[1] if v[0] is None else o for v, o in zip(verdicts, old, strict=True)]
        changed = sum(1 for a, b in zip(old, new, strict=True) if a != b)
        batch = set_column(batch, "text", new, pa.large_string())
        if self.mode == "tag":
            return StepResult(set_column(batch, f"{self.name}_reason", reasons, pa.string()), None, changed)
        return StepResult(batch, reasons, changed)
