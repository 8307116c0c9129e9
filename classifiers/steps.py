"""Model score steps (perplexity, wiki-reference, RoBERTa quality, topic).

Score steps only add columns; ``filters.thresholds.ScoreFilter`` reads one and rejects with a reason.  In the CommonCrawl
recipe they form a cascade: KenLM and fastText (thousands of docs/s) run first, their filters drop what they
reject, and the RoBERTa step only sees the survivors.  A missing model file fails at ``setup`` with a message that
says to run ``make models``.

Model locations default to ``None``: the models shipped in ``classifiers/default_models``, found relative to this
package when the step is set up, so they travel with the code to Ray workers.  A relative path a user gives is
made absolute on the driver when the step is built (the workers may run in another directory).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)
#: model files whose below-bar WARNING this process has logged
_WARNED: set[str] = set()

DEFAULT_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_models")
#: where each score step finds its shipped model, under DEFAULT_MODELS
DEFAULT_LOCATIONS = {
    "perplexity": "kenlm",
    "wikiref": os.path.join("wikiref", "model.ftz"),
    "roberta": "roberta",
    "topics": os.path.join("topics", "model.ftz"),
}


def absolute_path(path: str | None) -> str | None:
    """A user's relative path, made absolute on the driver (from its working directory) when the step is built."""
    if path is None or os.path.isabs(path) or "://" in path:
        return path
    return os.path.abspath(path)


def locate_model(path: str | None, model: str) -> str:
    """The configured location, or the shipped default of ``model`` (resolved where the step runs)."""
    return path if path is not None else os.path.join(DEFAULT_MODELS, DEFAULT_LOCATIONS[model])


@dataclass
class Perplexity(Step):
    """Adds ``perplexity`` (CCNet: KenLM 5-gram on SentencePiece pieces) and ``ppl_bucket`` (head/middle/tail).

    ``model_dir`` holds one sub-folder per language (``en/``...); a document whose ``lang`` column names a
    language without a model gets null scores (set ``languages`` to the ones you trained)."""

    kind: ClassVar[str] = "score"
    #: None: the shipped model (classifiers/default_models/kenlm); `make models` writes models/kenlm
    model_dir: str | None = None
    #: languages to score; others get nulls.  The document's ``lang`` column picks the model when present.
    languages: list[str] = field(default_factory=lambda: ["en"])

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model_dir = absolute_path(self.model_dir)

    def adds(self) -> dict[str, pa.DataType]:
        return {"perplexity": pa.float32(), "ppl_bucket": pa.string()}

    def setup(self) -> None:
        from classifiers.perplexity import PerplexityModel

        base = locate_model(self.model_dir, "perplexity")
        self._models = {lang: PerplexityModel.load(os.path.join(base, lang)) for lang in self.languages}

    def process(self, batch: pa.Table) -> StepResult:
        docs = texts(batch)
        default = self.languages[0] if len(self.languages) == 1 else None
        langs = batch.column("lang").to_pylist() if "lang" in batch.column_names else [default] * len(docs)
        ppl: list[float | None] = []
        buckets: list[str | None] = []
        for text, lang in zip(docs, langs, strict=True):
            model = self._models.get(lang) or (
                self._models.get(default) if default and lang is None else None
            )
            value = model.perplexity(text) if model else float("nan")
            ppl.append(None if math.isnan(value) else value)
            buckets.append(model.bucket(value) if model and not math.isnan(value) else None)
        batch = set_column(batch, "perplexity", ppl, pa.float32())
        return StepResult(set_column(batch, "ppl_bucket", buckets, pa.string()))


@dataclass
class FastTextScore(Step):
    """A score step over one fastText model: ``model_path``, or the shipped default of :attr:`model_key`."""

    kind: ClassVar[str] = "score"
    #: the DEFAULT_LOCATIONS key of the shipped model, and what to say when the file is missing
    model_key: ClassVar[str] = ""
    missing_hint: ClassVar[str] = "run `make models` to train it"
    #: None: the shipped model (under classifiers/default_models)
    model_path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model_path = absolute_path(self.model_path)

    def setup(self) -> None:
        from filters.langid import load_fasttext

        self._path = locate_model(self.model_path, self.model_key)
        if not os.path.exists(self._path):
            raise FileNotFoundError(f"{self.model_key} model {self._path} is missing: {self.missing_hint}")
        self._model = load_fasttext(self._path)


@dataclass
class WikiRefScore(FastTextScore):
    """Adds ``wikiref_prob``: the fastText wiki-reference classifier's P(reference-like)."""

    model_key: ClassVar[str] = "wikiref"

    def adds(self) -> dict[str, pa.DataType]:
        return {"wikiref_prob": pa.float32()}

    def process(self, batch: pa.Table) -> StepResult:
        from classifiers.wikiref import wiki_probability

        return StepResult(
            set_column(batch, "wikiref_prob", wiki_probability(self._model, texts(batch)), pa.float32())
        )


@dataclass
class TopicScore(FastTextScore):
    """Adds ``topic`` (one of :data:`classifiers.topics.TOPICS`) and ``topic_prob`` (the classifier's confidence).

    A score step: it never rejects; mixtures steer by the column (``topics:`` in a stage YAML).  An empty text gets
    a null topic rather than a guess."""

    model_key: ClassVar[str] = "topics"
    missing_hint: ClassVar[str] = "run `make models TOPIC_LABELS=<file>` to train it"

    def adds(self) -> dict[str, pa.DataType]:
        return {"topic": pa.string(), "topic_prob": pa.float32()}

    def setup(self) -> None:
        super().setup()
        quality = os.path.join(os.path.dirname(self._path), "quality.json")
        if os.path.exists(quality):
            with open(quality, encoding="utf-8") as f:
                q = json.load(f)
            if not q.get("meets_bar", True) and self._path not in _WARNED:
                _WARNED.add(self._path)  # once per process, not once per input
                log.warning(
                    "topic model %s: held-out macro-F1 %s is below its bar %s; topic shares in mixtures follow "
                    "its mistakes (train your own: make models TOPIC_LABELS=<file>)",
                    self._path,
                    q["heldout"]["macro_f1"],
                    q.get("bar_macro_f1"),
                )

    def process(self, batch: pa.Table) -> StepResult:
        from classifiers.topics import predict_topics

        topics, probs = predict_topics(self._model, texts(batch))
        batch = set_column(batch, "topic", topics, pa.string())
        return StepResult(set_column(batch, "topic_prob", probs, pa.float32()))


@dataclass
class RobertaQuality(Step):
    """Adds ``quality_prob`` from a RoBERTa sequence classifier (Winnow's trained one, or any local HF checkpoint).

    Asks Ray for a GPU: the runner makes it an actor pool when the cluster has one and runs it inline otherwise."""

    kind: ClassVar[str] = "score"
    resources: ClassVar[dict[str, float]] = {"num_gpus": 1}
    #: None: the shipped model (classifiers/default_models/roberta); or any local HF checkpoint directory
    model_dir: str | None = None
    #: documents per forward pass at max_length tokens; shorter ones pack more (None: 4 on a CPU, 128 on a GPU)
    batch_size: int | None = None
    max_length: int = 512
    #: index of the "high quality" label in the checkpoint's outputs
    positive_label: int = 1
    #: CPU threads for torch (None: torch's default)
    num_threads: int | None = None
    #: "int8": dynamic int8 quantization on CPU (~1.5x faster at base size, scores within ~0.01); null: float32
    quantize: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model_dir = absolute_path(self.model_dir)

    def adds(self) -> dict[str, pa.DataType]:
        return {"quality_prob": pa.float32()}

    def setup(self) -> None:
        from classifiers.roberta import RobertaScorer

        self._scorer = RobertaScorer(
            locate_model(self.model_dir, "roberta"),
            batch_size=self.batch_size,
            max_length=self.max_length,
            num_threads=self.num_threads,
            quantize=self.quantize,
        )

    def process(self, batch: pa.Table) -> StepResult:
        probs = self._scorer.predict(texts(batch), positive=self.positive_label)
        return StepResult(set_column(batch, "quality_prob", probs, pa.float32()))
