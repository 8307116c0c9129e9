"""Measure a quality model on labelled text: the numbers in each model's ``quality.json`` and MANIFEST.

One scorer per model returns "higher = more reference-like" (for KenLM: minus the perplexity), so one AUC
function serves all three.  The held-out evaluation set compares reference *chunks* (a book is not a web page; at
most :data:`MAX_CHUNKS_PER_DOC` evenly spaced chunks per document, so one long book does not dominate) with whole
web pages, the unit the pipeline scores.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np

from classifiers.dataset import Piece
from classifiers.wikiref import binary_metrics

log = logging.getLogger(__name__)

MAX_CHUNKS_PER_DOC = 40
#: the quality bar of each model: held-out AUC separating reference text from web pages
#: semantic: AUC of cosine, reworded pairs vs non-pairs (classifiers/train_embeddings.py)
BARS = {"wikiref": 0.90, "roberta": 0.90, "perplexity": 0.80, "semantic": 0.90}
QUALITY_FILE = "quality.json"


def eval_set(pieces: list[Piece], lang: str = "en") -> tuple[list[str], np.ndarray]:
    """(texts, labels) of held-out pieces: capped reference chunks (label 1), whole web pages (label 0)."""
    by_doc: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in pieces:
        if p.lang == lang and p.label == 1:
            by_doc[(p.kind, p.key)].append(p.text)
    ref: list[str] = []
    for key in sorted(by_doc):
        chunks = by_doc[key]
        step = max(1, len(chunks) // MAX_CHUNKS_PER_DOC)
        ref += chunks[::step][:MAX_CHUNKS_PER_DOC]
    web = [p.text for p in pieces if p.label == 0 and p.lang == lang]
    return ref + web, np.array([1] * len(ref) + [0] * len(web))


def scorer(model: str, location: str) -> Any:
    """A function texts -> np.ndarray (higher = more reference-like) for ``model`` stored at ``location``."""
    if model == "wikiref":
        from classifiers.wikiref import wiki_probability
        from filters.langid import load_fasttext

        ft = load_fasttext(location)
        return lambda texts: wiki_probability(ft, texts)
    if model == "roberta":
        from classifiers.roberta import RobertaScorer

        rs = RobertaScorer(location, max_length=512, device="cpu")
        return lambda texts: rs.predict(texts)
    if model == "perplexity":
        from classifiers.perplexity import PerplexityModel

        pm = PerplexityModel.load(location)
        return lambda texts: -np.array([pm.perplexity(t) for t in texts], dtype=np.float64)
    raise ValueError(f"unknown model {model!r}: one of wikiref, roberta, perplexity")


def measure(model: str, location: str, texts: list[str], labels: np.ndarray) -> dict[str, Any]:
    """AUC (and precision/recall/accuracy at 0.5 for the classifiers) of ``model`` on labelled texts."""
    scores = scorer(model, location)(texts)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    metrics = binary_metrics(labels, scores, threshold=0.5 if model != "perplexity" else -np.inf)
    if model == "perplexity":  # accuracy at a threshold means nothing for a perplexity
        metrics = {"auc": metrics["auc"], "n": metrics["n"]}
    metrics["positives"] = int(np.sum(labels))
    return metrics


def read_labels(path: str) -> tuple[list[str], np.ndarray]:
    """A labelled JSONL file: ``text`` and ``label`` (1/0, or a probability thresholded at 0.5)."""
    from classifiers.roberta import read_label_file

    texts, labels = read_label_file(path)
    if not texts:
        raise ValueError(f"{path} holds no labelled lines (JSON lines with 'text' and 'label')")
    return texts, np.array(labels)


def model_location(model: str, models_dir: str, lang: str = "en") -> str:
    """Where ``train`` writes ``model`` under ``models_dir``."""
    return {
        "wikiref": os.path.join(models_dir, "wikiref", "model.ftz"),
        "roberta": os.path.join(models_dir, "roberta"),
        "perplexity": os.path.join(models_dir, "kenlm", lang),
    }[model]


def write_quality(
    model_dir: str, model: str, metrics: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """Record the held-out AUC, the bar and whether it is met, next to the model (read by the filter gate)."""
    bar = BARS[model]
    record = {"model": model, "heldout": metrics, "bar_auc": bar, "meets_bar": bool(metrics["auc"] >= bar)}
    record |= extra
    with open(os.path.join(model_dir, QUALITY_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return record
