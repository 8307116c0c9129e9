"""Train the default semantic-dedup encoder (``make models``): fastText skip-gram word vectors over the user's text,
cut to the most frequent words and stored as float16 (a few MB), SIF document vectors (:mod:`classifiers.embeddings`).

Quality is measured on held-out documents as the AUC of cosine similarity between *reworded pairs* and *non-pairs*.
No paraphrase corpus ships with Winnow, so the pairs are made: a held-out chunk against a rewording of itself
(sentences in another order, one word in four dropped, neighbouring words swapped), a rewording whose word 5-gram
Jaccard is far below MinHash's threshold.  Non-pairs are the hard case: two different chunks of the *same* held-out
document (same topic, same vocabulary), plus chunks of different documents.  The record also gives, per cosine
threshold, the share of reworded pairs found and of same-document non-pairs wrongly matched.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from typing import Any

import numpy as np

from classifiers.dataset import Piece
from classifiers.embeddings import SifEncoder, words
from classifiers.wikiref import roc_auc

log = logging.getLogger(__name__)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
THRESHOLDS = (0.8, 0.85, 0.9, 0.95)


def reword(text: str, rng: random.Random) -> str:
    """A rewording that keeps the facts' words but few of the 5-grams: sentences shuffled, words dropped/swapped."""
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    rng.shuffle(sentences)
    out = []
    for s in sentences:
        toks = [w for w in s.split() if rng.random() >= 0.25]
        for i in range(0, len(toks) - 1, 5):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        out.append(" ".join(toks))
    return " ".join(out)


def _jaccard5(a: str, b: str) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = words(t)
        return {tuple(w[i : i + 5]) for i in range(max(1, len(w) - 4))}

    x, y = grams(a), grams(b)
    return len(x & y) / max(1, len(x | y))


def eval_pairs(held: list[Piece], seed: int, per_doc: int = 4) -> tuple[list[tuple[str, str]], list[str]]:
    """(text, text) pairs and their kind: ``reworded`` (a duplicate), ``same_doc`` (two chunks of one document:
    same topic, not a duplicate) or ``other_doc``."""
    rng = random.Random(seed)
    by_doc: dict[str, list[str]] = {}
    # pieces of 300+ characters (100+ when fewer than 20 are that long: a small training folder)
    least = 300 if sum(len(p.text) >= 300 for p in held) >= 20 else 100
    for p in held:
        if len(p.text) >= least:
            by_doc.setdefault(f"{p.kind}:{p.key}", []).append(p.text)
    docs = sorted(by_doc)
    pairs: list[tuple[str, str]] = []
    kinds: list[str] = []
    for k in docs:
        chunks = by_doc[k][:per_doc]
        for i, c in enumerate(chunks):
            pairs.append((c, reword(c, rng)))
            kinds.append("reworded")
            if i + 1 < len(chunks):  # same document, another chunk: same topic, not a duplicate
                pairs.append((c, chunks[i + 1]))
                kinds.append("same_doc")
            other = by_doc[rng.choice(docs)][0]
            if other is not c:
                pairs.append((c, other))
                kinds.append("other_doc")
    return pairs, kinds


def measure_pairs(encoder: Any, pairs: list[tuple[str, str]], kinds: list[str]) -> dict[str, Any]:
    """AUC of cosine (reworded vs every non-pair), and per threshold the share of each kind above it."""
    a = encoder.encode([p[0] for p in pairs])
    b = encoder.encode([p[1] for p in pairs])
    cos = (a * b).sum(1)
    kind = np.array(kinds)
    y = kind == "reworded"

    def mean(x: np.ndarray) -> float | None:
        return round(float(x.mean()), 4) if len(x) else None

    return {
        "auc": round(roc_auc(y, cos), 4),
        "n": int(len(y)),
        "pairs": int(y.sum()),
        "non_pairs": int((~y).sum()),
        "mean_cosine_pairs": mean(cos[y]),
        "mean_cosine_same_doc": mean(cos[kind == "same_doc"]),
        "auc_vs_same_doc": round(roc_auc(y[y | (kind == "same_doc")], cos[y | (kind == "same_doc")]), 4),
        "mean_jaccard5_pairs": mean(np.array([_jaccard5(*p) for p, k in zip(pairs, y, strict=True) if k])),
        "by_threshold": {
            str(t): {k: mean(cos[kind == k] >= t) for k in ("reworded", "same_doc", "other_doc")}
            for t in THRESHOLDS
        },
    }


def train_semantic(
    train: list[Piece],
    held: list[Piece],
    out: str,
    seed: int = 0,
    dim: int = 64,
    vocab: int = 30000,
    components: int = 3,
    epoch: int = 10,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Word vectors + SIF meta into ``out``; returns (held-out metrics, training record)."""
    from classifiers.fasttext_train import fit_fasttext

    texts = [p.text for p in train]
    lines = (" ".join(words(t)) + "\n" for t in texts)
    model = fit_fasttext(lines, unsupervised=True, model="skipgram", dim=dim, epoch=epoch, minCount=2)
    found, counts = model.get_words(include_freq=True)
    keep = [(w, int(c)) for w, c in zip(found, counts, strict=True) if w != "</s>"][:vocab]
    vectors = np.stack([model.get_word_vector(w) for w, _ in keep]).astype(np.float16)
    np.save(os.path.join(out, "vectors.npy"), vectors)
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{w}\t{c}\n" for w, c in keep)
    meta: dict[str, Any] = {"kind": "sif-fasttext", "sif_a": 1e-3, "dim": dim, "principal_components": []}
    _write_meta(out, meta)
    # the common directions of the training documents (style, language), removed from every vector: with 3
    # removed, two chunks of one document looked less alike (same-document pairs >= 0.9: 24% -> 9%)
    x = SifEncoder(out).encode(texts)
    top = np.linalg.svd(x, full_matrices=False)[2][:components]
    meta["principal_components"] = [[round(float(v), 6) for v in row] for row in top]
    _write_meta(out, meta)
    pairs, kinds = eval_pairs(held, seed)
    metrics = measure_pairs(SifEncoder(out), pairs, kinds)
    log.info("semantic encoder: %d words x %d dims, held-out AUC %s", len(keep), dim, metrics["auc"])
    extra = {
        "components_removed": components,
        "words": len(keep),
        "dim": dim,
        "epoch": epoch,
        "train_texts": len(texts),
        "eval": __doc__.split("\n\n")[1],
    }
    return metrics, extra


def _write_meta(out: str, meta: dict[str, Any]) -> None:
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
