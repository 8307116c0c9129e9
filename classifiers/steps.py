"""Model score steps (perplexity, wiki-reference, RoBERTa quality).

Score steps only add columns; ``filters.thresholds.ScoreFilter`` reads one and rejects with a reason.  In the CommonCrawl
recipe they form a cascade: KenLM and fastText (thousands of docs/s) run first, their filters drop what they
reject, and the RoBERTa step only sees the survivors.  A missing model file fails at ``setup`` with a message that
says to run ``make models``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from pipelines.core.paths import resolve_path
from pipelines.core.steps import Step, StepResult, set_column, texts


def model_path(path: str) -> str:
    """Relative model paths are relative to the working directory, else to the repository."""
    return resolve_path(path)


@dataclass
class Perplexity(Step):
    """Adds ``perplexity`` (CCNet: KenLM 5-gram on SentencePiece pieces) and ``ppl_bucket`` (head/middle/tail).

    ``model_dir`` holds one sub-folder per language (``en/``...); a document whose ``lang`` column names a
    language without a model gets null scores (set ``languages`` to the ones you trained)."""

    kind: ClassVar[str] = "score"
    model_dir: str = "models/kenlm"
    #: languages to score; others get nulls.  The document's ``lang`` column picks the model when present.
    languages: list[str] = field(default_factory=lambda: ["en"])

    def adds(self) -> dict[str, pa.DataType]:
        return {"perplexity": pa.float32(), "ppl_bucket": pa.string()}

    def setup(self) -> None:
        from classifiers.perplexity import PerplexityModel

        base = model_path(self.model_dir)
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
class WikiRefScore(Step):
    """Adds ``wikiref_prob``: the fastText wiki-reference classifier's P(reference-like)."""

    kind: ClassVar[str] = "score"
    model_path: str = "models/wikiref/model.bin"

    def adds(self) -> dict[str, pa.DataType]:
        return {"wikiref_prob": pa.float32()}

    def setup(self) -> None:
        from filters.langid import load_fasttext

        path = model_path(self.model_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"wiki-reference model {path} is missing: run `make models` to train it")
        self._model = load_fasttext(path)

    def process(self, batch: pa.Table) -> StepResult:
        from classifiers.wikiref import wiki_probability

        return StepResult(
            set_column(batch, "wikiref_prob", wiki_probability(self._model, texts(batch)), pa.float32())
        )


@dataclass
class RobertaQuality(Step):
    """Adds ``quality_prob`` from a RoBERTa sequence classifier (Winnow's trained one, or any local HF checkpoint).

    Asks Ray for a GPU: the runner makes it an actor pool when the cluster has one and runs it inline otherwise."""

    kind: ClassVar[str] = "score"
    resources: ClassVar[dict[str, float]] = {"num_gpus": 1}
    model_dir: str = "models/roberta"
    #: documents per forward pass at max_length tokens; shorter ones pack more (None: 4 on a CPU, 128 on a GPU)
    batch_size: int | None = None
    max_length: int = 512
    #: index of the "high quality" label in the checkpoint's outputs
    positive_label: int = 1
    #: CPU threads for torch (None: torch's default)
    num_threads: int | None = None
    #: "int8": dynamic int8 quantization on CPU (~1.5x faster at base size, scores within ~0.01); null: float32
    quantize: str | None = None

    def adds(self) -> dict[str, pa.DataType]:
        return {"quality_prob": pa.float32()}

    def setup(self) -> None:
        from classifiers.roberta import RobertaScorer

        self._scorer = RobertaScorer(
            model_path(self.model_dir),
            batch_size=self.batch_size,
            max_length=self.max_length,
            num_threads=self.num_threads,
            quantize=self.quantize,
        )

    def process(self, batch: pa.Table) -> StepResult:
        probs = self._scorer.predict(texts(batch), positive=self.positive_label)
        return StepResult(set_column(batch, "quality_prob", probs, pa.float32()))
