"""Heuristic quality rules (Gopher repetition, Gopher quality, C4, FineWeb): datatrove's filters, wrapped as batch steps.

The rules themselves are datatrove's, called unchanged.  What the wrapper adds:

* one word tokenization per document instead of three: Gopher repetition, Gopher quality and FineWeb each split the
  same text with spaCy; they accept a ``WordTokenizer`` object as ``language``, and we hand them one that remembers
  the last documents it split and calls spaCy's tokenizer without the pipeline and memory zone around it (the same
  tokens, ~1.8x faster; tests/pipelines/sources/test_commoncrawl.py checks token lists and filter decisions against datatrove's);
* ``mode: tag`` keeps every row and records the rule's verdict in ``<name>_reason`` (null = passes), so a mixture can
  select e.g. the C4-passing slice of CommonCrawl later in DuckDB without recomputing;
* reasons are namespaced (``gopher_rep:dup_line_frac``), and a document that crashes a rule is rejected, not fatal.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pyarrow as pa

from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)

_SHARED_TOKENIZERS: dict[str, Any] = {}


def import_spacy_without_torch() -> None:
    """Import spaCy without the torch import its thinc backend attempts (1.4 s per process here, a third of a worker's
    warm-up): only spaCy's tokenizer is used, which never touches torch.  A process that has already imported torch
    (a model step) keeps it; torch stays importable afterwards (thinc just records it as absent)."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment] - `import torch` raises ImportError while this is set
    try:
        import spacy  # noqa: F401
    except ImportError:
        pass  # datatrove reports a missing spaCy itself, with its install hint
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


def shared_word_tokenizer(language: str = "en", cache_size: int = 1024) -> Any:
    """A process-wide caching wrapper around datatrove's word tokenizer for ``language``."""
    if language not in _SHARED_TOKENIZERS:
        import_spacy_without_torch()
        from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

        class CachedWordTokenizer(WordTokenizer):
            """Memoises ``word_tokenize`` (LRU over whole texts); other calls go straight to the wrapped tokenizer."""

            def __init__(self, inner: WordTokenizer, size: int):
                super().__init__(inner.language)
                self.inner, self.size = inner, size
                self.max_vocab = 2_000_000
                self.cache: OrderedDict[str, list[str]] = OrderedDict()
                self.hits = self.misses = 0

            def clear(self) -> None:
                self.cache.clear()

            def word_tokenize(self, text: str) -> list[str]:
                words = self.cache.get(text)
                if words is not None:
                    self.hits += 1
                    self.cache.move_to_end(text)
                    return words
                self.misses += 1
                words = self._tokenize(text)
                self.cache[text] = words
                if len(self.cache) > self.size:
                    self.cache.popitem(last=False)
                return words

            def _tokenize(self, text: str) -> list[str]:
                """spaCy's Tokenizer called directly: the same tokens as datatrove's SpaCyTokenizer (which runs the
                whole pipeline, sentencizer included, inside a memory_zone that throws away every new lexeme, so
                spaCy's lexeme cache never warms up).  The vocabulary is rebuilt past ``max_vocab`` to bound memory."""
                nlp = self._nlp()
                if nlp is None:
                    return self.inner.word_tokenize(text)  # NLTK/Stanza/Japanese: datatrove's own path
                try:
                    tokens = [t.text for t in nlp.tokenizer(text)]
                except Exception:  # noqa: BLE001 - datatrove's own fallbacks (e.g. the IS_ALPHA string)
                    return self.inner.word_tokenize(text)
                return [t.strip() for t in tokens if t.strip()]

            def _nlp(self):
                """The spaCy pipeline (tokenizer + sentencizer) when it is datatrove's plain SpaCy one, else None."""
                inner = self.inner
                if not hasattr(inner, "_do_tokenize") or inner.language == "ja":
                    return None
                if len(inner.tokenizer.vocab) > self.max_vocab:
                    inner._tokenizer = None
                return inner.tokenizer

            def sent_tokenize(self, text: str) -> list[str]:
                return self.inner.sent_tokenize(text)

            def span_tokenize(self, text: str) -> list[tuple[int, int]]:
                """C4 counts sentences per line through this; same spans as datatrove's, without the memory zone."""
                nlp = self._nlp()
                if nlp is None or "IS_ALPHA" in text:
                    return self.inner.span_tokenize(text)
                nlp.max_length = max(nlp.max_length, len(text) + 10)
                return [
                    (s.start_char, s.end_char) for s in nlp(text, disable=["parser", "tagger", "ner"]).sents
                ]

        _SHARED_TOKENIZERS[language] = CachedWordTokenizer(load_word_tokenizer(language), cache_size)
    return _SHARED_TOKENIZERS[language]


@dataclass
class DatatroveRule(Step):
    """Runs one datatrove filter over each row.  ``params`` go to the datatrove class unchanged."""

    kind: ClassVar[str] = "filter"
    #: dotted name of the datatrove filter class
    filter_class: ClassVar[str] = ""
    #: reason prefix and default step name
    prefix: ClassVar[str] = ""

    params: dict[str, Any] = field(default_factory=dict)
    #: drop: reject failing rows; tag: keep all rows, write the verdict to ``<name>_reason``
    mode: Literal["drop", "tag"] = "drop"
    language: str = "en"

    @classmethod
    def default_name(cls) -> str:
        return cls.prefix

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
        if self.language in _SHARED_TOKENIZERS:
            _SHARED_TOKENIZERS[self.language].clear()

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
    #: filters/gopher_speedups.py: datatrove's n-gram helpers swapped for result-identical faster ones
    fast_ngrams: bool = True

    def setup(self) -> None:
        if self.fast_ngrams:
            from filters import gopher_speedups

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
