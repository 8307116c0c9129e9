"""Token-distribution outliers (LLaMA-3 §3.1.1: "Kullback-Leibler divergence to filter out documents containing
excessive numbers of outlier tokens compared to the training corpus distribution").

``token_kl`` is KL(P_doc || Q): P_doc the document's token frequencies under the Llama-3 tokenizer (the one the
mixtures count with; ``quicktok`` ships it), Q the reference distribution (add-half smoothed unigram counts of real
text).  A page of token salad (random strings, base64, mojibake, keyword spam) concentrates its mass on tokens Q
thinks rare and scores high.  KL of a short text is biased upwards (few tokens cannot spread like the corpus), so
documents under ``min_tokens`` get a null score, and the reference's cut is chosen on pieces of web-page length.

The reference (``counts.npy`` + ``reference.json`` with the cut at a percentile) is built by :func:`build_reference`
(``winnow models token-kl``) from the user's text; a default built from real public text ships in
``classifiers/default_models/token_kl/``.  The ``token_kl_filter`` step of the CommonCrawl recipe rejects above the
cut; the column stays on rejected rows so the cut can be re-chosen in DuckDB.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from pipelines.core.paths import resolve_path
from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_models", "token_kl")
ALPHA = 0.5


def _encoding(name: str) -> Any:
    try:
        import quicktok
    except ImportError:
        raise ImportError("token_kl needs the Llama-3 tokenizer: pip install quicktok-v1") from None
    return quicktok.get_encoding(name)


def encode(encoding: Any, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flat token ids, offsets): document i is ids[offsets[i]:offsets[i+1]]."""
    ids, offsets = encoding.encode_batch(list(docs), threads=1)
    return np.asarray(ids, dtype=np.int64), np.asarray(offsets, dtype=np.int64)


def kl_divergence(ids: np.ndarray, offsets: np.ndarray, log_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(KL(P_doc || Q) per document, token count per document), vectorised over the whole batch."""
    n_docs = len(offsets) - 1
    lengths = np.diff(offsets)
    kl = np.zeros(n_docs)
    if len(ids) == 0:
        return kl, lengths
    doc = np.repeat(np.arange(n_docs), lengths)
    pairs, counts = np.unique(doc * len(log_q) + ids, return_counts=True)
    pair_doc = pairs // len(log_q)
    token = pairs % len(log_q)
    p = counts / lengths[pair_doc]
    kl = np.bincount(pair_doc, weights=p * (np.log(p) - log_q[token]), minlength=n_docs)
    return kl, lengths


def log_reference(counts: np.ndarray) -> np.ndarray:
    return np.log((counts + ALPHA) / (counts.sum() + ALPHA * len(counts)))


def _pieces(docs: Iterable[str], encoding: Any, seed: int, low: int, high: int) -> list[np.ndarray]:
    """Documents cut into pieces of web-page length (``low``..``high`` tokens, seeded)."""
    rng = random.Random(seed)
    out = []
    for text in docs:
        ids = np.asarray(encoding.encode_ordinary(text), dtype=np.int64)
        start = 0
        while len(ids) - start >= low:
            size = rng.randint(low, high)
            out.append(ids[start : start + size])
            start += size
    return out


def build_reference(docs: Sequence[str], out_dir: str, tokenizer: str = "llama3", percentile: float = 99.5,
                    min_tokens: int = 100, seed: int = 0, origin: str = "") -> dict[str, Any]:
    """Count tokens of ``docs`` into Q; the cut is the ``percentile`` of KL over held-out pieces of 100..2,000 tokens
    (every fifth document is held out: its tokens are not in Q)."""
    enc = _encoding(tokenizer)
    train = [d for i, d in enumerate(docs) if i % 5]
    held = [d for i, d in enumerate(docs) if not i % 5]
    ids, _ = encode(enc, train)
    counts = np.bincount(ids, minlength=enc.n_vocab).astype(np.int64)
    log_q = log_reference(counts)
    pieces = _pieces(held, enc, seed, min_tokens, 2000)
    if not pieces:
        raise ValueError("token_kl: no held-out text of at least min_tokens tokens to choose the cut on")
    flat = np.concatenate(pieces)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    kl, _ = kl_divergence(flat, offsets, log_q)
    meta = {
        "tokenizer": tokenizer, "alpha": ALPHA, "min_tokens": min_tokens, "percentile": percentile,
        "cut": round(float(np.percentile(kl, percentile)), 4),
        "kl_percentiles": {str(q): round(float(np.percentile(kl, q)), 4) for q in (50, 90, 99, 99.5, 99.9)},
        "reference_tokens": int(counts.sum()), "train_docs": len(train), "heldout_pieces": len(pieces),
        "origin": origin,
    }
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "counts.npy"), counts.astype(np.uint32) if counts.max() < 2**32 else counts)
    with open(os.path.join(out_dir, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta


def load_reference(folder: str) -> tuple[np.ndarray, dict[str, Any]]:
    folder = resolve_path(folder)
    path = os.path.join(folder, "counts.npy")
    if not os.path.exists(path):
        raise FileNotFoundError(f"token_kl reference {path} is missing: build one with `winnow models token-kl`")
    with open(os.path.join(folder, "reference.json"), encoding="utf-8") as f:
        return np.load(path).astype(np.int64), json.load(f)


@dataclass
class TokenKL(Step):
    """Adds ``token_kl``: KL divergence of the document's token distribution from the reference (null under
    ``min_tokens`` tokens).  ``reference_dir`` holds ``counts.npy`` and ``reference.json``."""

    kind: ClassVar[str] = "score"

    reference_dir: str = DEFAULT_DIR

    def adds(self) -> dict[str, pa.DataType]:
        return {"token_kl": pa.float32()}

    def setup(self) -> None:
        counts, self._meta = load_reference(self.reference_dir)
        self._log_q = log_reference(counts)
        self._enc = _encoding(self._meta.get("tokenizer", "llama3"))

    def process(self, batch: pa.Table) -> StepResult:
        ids, offsets = encode(self._enc, texts(batch))
        kl, lengths = kl_divergence(ids, offsets, self._log_q)
        short = lengths < int(self._meta.get("min_tokens", 100))
        values = [None if s else float(v) for v, s in zip(kl, short, strict=True)]
        return StepResult(set_column(batch, "token_kl", values, pa.float32()))
