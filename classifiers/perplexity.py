"""CCNet's perplexity model: SentencePiece pieces scored by a KenLM 5-gram trained on reference (Wikipedia) text.

Training needs KenLM's ``lmplz`` (built by ``classifiers/build_kenlm.sh`` into ``.cache/kenlm``); scoring needs only
the pip ``kenlm`` module.  Text is normalised as CCNet does (lower case, accents off, digits → 0, punctuation
unified) before SentencePiece, and a document's perplexity is CCNet's: the log-probabilities of its lines
(paragraphs) summed and divided by their summed length in pieces (+1 for ``</s>`` per line).  The head/middle/tail
cut-offs are the 30th/60th percentiles of perplexity over a sample of web text, stored in ``meta.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KENLM_CACHE = os.environ.get("WINNOW_KENLM", os.path.join(REPO, ".cache", "kenlm"))

_DIGITS = re.compile(r"\d")
_PUNCT = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "’": "'",
    "‘": "'",
    "–": "-",
    "—": " - ",
    "…": "...",
    "：": ":",
    "；": ";",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
}
_PUNCT_RE = re.compile("|".join(map(re.escape, _PUNCT)))


def normalize(line: str) -> str:
    """CCNet's normalisation: lower case, no accents, digits as 0, unified punctuation, single spaces."""
    line = line.strip().lower()
    line = unicodedata.normalize("NFD", line)
    line = "".join(c for c in line if unicodedata.category(c) != "Mn")
    line = _DIGITS.sub("0", line)
    line = _PUNCT_RE.sub(lambda m: _PUNCT[m.group(0)], line)
    return " ".join(line.split())


def lmplz_path() -> str:
    path = os.path.join(KENLM_CACHE, "bin", "lmplz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"KenLM's lmplz is not built ({path}): run `make models` (it builds it), or classifiers/build_kenlm.sh"
        )
    return path


def train_sentencepiece(lines: list[str], out_prefix: str, vocab_size: int = 8000, seed: int = 0) -> str:
    """Train a unigram SentencePiece model on normalised lines; the vocabulary shrinks to fit small data."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=out_prefix,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=0.9995,
        model_type="unigram",
        num_threads=1,
        minloglevel=2,
        input_sentence_size=200_000,
        shuffle_input_sentence=True,
    )
    return out_prefix + ".model"


def train_kenlm(
    piece_lines: list[str],
    out_path: str,
    order: int = 5,
    memory: str = "1G",
    prune: list[int] | None = None,
    quantize_bits: int | None = None,
) -> str:
    """``lmplz -o order --discount_fallback [--prune ...]`` on space-separated pieces, then ``build_binary`` (a
    trie with ``quantize_bits``-bit probabilities when given: the shipped model is a fraction of the probing size)."""
    lmplz = lmplz_path()
    extra = ["--prune", *map(str, prune)] if prune else []
    with tempfile.TemporaryDirectory() as tmp:
        arpa = os.path.join(tmp, "lm.arpa")
        with open(arpa, "wb") as out:
            proc = subprocess.run(
                [lmplz, "-o", str(order), "--discount_fallback", "-S", memory, "-T", tmp, *extra],
                input="\n".join(piece_lines).encode("utf-8"),
                stdout=out,
                stderr=subprocess.PIPE,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"lmplz failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        build_binary = os.path.join(os.path.dirname(lmplz), "build_binary")
        if os.path.exists(build_binary):
            fmt = ["-q", str(quantize_bits), "-b", str(quantize_bits), "trie"] if quantize_bits else []
            subprocess.run([build_binary, *fmt, arpa, out_path], check=True, capture_output=True)
        else:
            shutil.copy(arpa, out_path)
    return out_path


@dataclass
class PerplexityModel:
    """A loaded SentencePiece + KenLM pair and its bucket cut-offs."""

    sp: Any
    lm: Any
    cutoffs: tuple[float, float] | None = None

    @classmethod
    def load(cls, model_dir: str) -> PerplexityModel:
        import kenlm
        import sentencepiece as spm

        sp_path, lm_path = os.path.join(model_dir, "sp.model"), os.path.join(model_dir, "lm.binary")
        for p in (sp_path, lm_path):
            if not os.path.exists(p):
                raise FileNotFoundError(
                    f"perplexity model file {p} is missing: run `make models` to train it"
                )
        meta_path = os.path.join(model_dir, "meta.json")
        cutoffs = None
        if os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                c = json.load(f).get("cutoffs")
            cutoffs = (float(c[0]), float(c[1])) if c else None
        return cls(spm.SentencePieceProcessor(model_file=sp_path), kenlm.Model(lm_path), cutoffs)

    def pieces(self, lines: list[str]) -> list[str]:
        return [" ".join(p) for p in self.sp.encode([normalize(x) for x in lines], out_type=str)]

    def perplexity(self, text: str) -> float:
        """CCNet's document perplexity: summed line log10-probabilities over summed line lengths."""
        lines = [x for x in text.split("\n") if x.strip()]
        if not lines:
            return float("nan")
        log_score, length = 0.0, 0
        for pieces in self.pieces(lines):
            log_score += self.lm.score(pieces)
            length += len(pieces.split()) + 1
        return round(10.0 ** (-log_score / length), 1)

    def bucket(self, ppl: float) -> str | None:
        if self.cutoffs is None or ppl != ppl:
            return None
        return "head" if ppl < self.cutoffs[0] else "middle" if ppl < self.cutoffs[1] else "tail"


def train_perplexity_model(
    reference: list[str],
    web: list[str],
    model_dir: str,
    vocab_size: int = 8000,
    order: int = 5,
    seed: int = 0,
    prune: list[int] | None = None,
    quantize_bits: int | None = None,
    percentiles: tuple[float, float] = (30.0, 60.0),
) -> dict[str, Any]:
    """Train SentencePiece + KenLM on ``reference`` texts, set the bucket cut-offs at ``percentiles`` of the
    perplexity of ``web``; returns the metadata."""
    os.makedirs(model_dir, exist_ok=True)
    lines = [n for t in reference for x in t.split("\n") if (n := normalize(x))]
    if len(lines) < 20:
        raise ValueError(
            f"too little reference text for a language model ({len(lines)} lines); give REFERENCE="
        )
    tmp_prefix = os.path.join(model_dir, "sp")
    train_sentencepiece(lines, tmp_prefix, vocab_size=vocab_size, seed=seed)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tmp_prefix + ".model")
    piece_lines = [" ".join(p) for p in sp.encode(lines, out_type=str)]
    train_kenlm(
        piece_lines,
        os.path.join(model_dir, "lm.binary"),
        order=order,
        prune=prune,
        quantize_bits=quantize_bits,
    )
    model = PerplexityModel.load(model_dir)
    web_ppl = np.array([model.perplexity(t) for t in web]) if web else np.array([])
    web_ppl = web_ppl[~np.isnan(web_ppl)]
    cutoffs = (
        [float(np.percentile(web_ppl, percentiles[0])), float(np.percentile(web_ppl, percentiles[1]))]
        if len(web_ppl) >= 10
        else None
    )
    meta = {
        "cutoffs": cutoffs,
        "percentiles": list(percentiles),
        "order": order,
        "vocab_size": sp.get_piece_size(),
        "reference_lines": len(lines),
        "web_sample": int(len(web_ppl)),
    }
    with open(os.path.join(model_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta
