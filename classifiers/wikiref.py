"""The fastText "Wikipedia-reference" classifier (LLaMA-1; RedPajama keeps ``wikiref_prob >= 0.25``).

Positives are reference-quality texts (Wikipedia, books, arXiv, top StackExchange answers), negatives web pages;
classes are balanced by down-sampling the larger one with a seeded RNG, and a held-out split gives precision/recall.
Texts are preprocessed as RedPajama's classifier does: lower case, one line, whitespace collapsed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
LABEL_POS, LABEL_NEG = "__label__wiki", "__label__cc"
_WS = re.compile(r"\s+")


def preprocess(text: str, max_chars: int = 20_000) -> str:
    return _WS.sub(" ", text[:max_chars].lower()).strip()


def balanced_split(
    pos: list[str], neg: list[str], seed: int = 0, holdout: float = 0.2
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Down-sample the larger class, shuffle, and cut a held-out share of each class."""
    rng = random.Random(seed)
    n = min(len(pos), len(neg))
    if n < 5:
        raise ValueError(f"need at least 5 texts per class, have {len(pos)} reference and {len(neg)} web")
    pos, neg = rng.sample(pos, n), rng.sample(neg, n)
    k = max(1, int(n * holdout))
    test = [(t, 1) for t in pos[:k]] + [(t, 0) for t in neg[:k]]
    train = [(t, 1) for t in pos[k:]] + [(t, 0) for t in neg[k:]]
    rng.shuffle(train)
    return train, test


#: the wiki-reference model's fastText settings (fastText's own names); ``train_fasttext(**params)`` overrides them
FASTTEXT_SETTINGS: dict[str, Any] = {"epoch": 20, "dim": 64, "wordNgrams": 2, "lr": 0.5, "minCount": 2}


def train_fasttext(
    train: list[tuple[str, int]], out_path: str, seed: int = 0, quantize: bool = False, **params: Any
) -> str:
    """The wiki-reference classifier (:func:`classifiers.fasttext_train.fit_fasttext`) on (text, 1 = reference)
    pairs."""
    from classifiers.fasttext_train import fit_fasttext, labelled_lines

    lines = labelled_lines(((text, "wiki" if label else "cc") for text, label in train), preprocess)
    fit_fasttext(lines, out_path, quantize=quantize, seed=seed, **(FASTTEXT_SETTINGS | params))
    return out_path


def wiki_probability(model: Any, docs: list[str]) -> np.ndarray:
    """P(reference-like) per text, batched through fastText's C++ loop."""
    if not docs:
        return np.zeros(0, dtype=np.float32)
    labels, probs = model.predict([preprocess(d) for d in docs], k=2)
    out = np.empty(len(docs), dtype=np.float32)
    for i, (lab, pr) in enumerate(zip(labels, probs, strict=True)):
        d = dict(zip(lab, pr, strict=True))
        out[i] = min(1.0, float(d.get(LABEL_POS, 1.0 - d.get(LABEL_NEG, 0.0))))
    return out


def binary_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and accuracy at ``threshold`` and ROC AUC (rank statistic, ties counted half)."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(prob) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "accuracy": round(float((pred == y).mean()), 4) if len(y) else 0.0,
        "auc": round(roc_auc(y, prob), 4),
        "n": int(len(y)),
    }


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    pos, neg = np.asarray(score)[y], np.asarray(score)[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def train_wikiref(
    pos: list[str], neg: list[str], model_dir: str, seed: int = 0, **params: Any
) -> dict[str, Any]:
    """Train, evaluate on the held-out split, and write ``model.bin`` + ``meta.json`` into ``model_dir``."""
    from classifiers.fasttext_train import load_retrained

    train, test = balanced_split(pos, neg, seed=seed)
    model = load_retrained(train_fasttext(train, os.path.join(model_dir, "model.bin"), seed=seed, **params))
    prob = wiki_probability(model, [t for t, _ in test])
    meta = {
        "train": len(train),
        "heldout": binary_metrics(np.array([y for _, y in test]), prob),
        "seed": seed,
    }
    with open(os.path.join(model_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta
