"""Document embeddings for semantic dedup: unit vectors whose dot product is the documents' cosine similarity.

Two kinds of model folder, told apart by their files:

* a Hugging Face encoder checkpoint (``config.json``: any local BERT/RoBERTa/MiniLM/E5...): transformers
  ``AutoModel``, mean pooling over the attention mask, L2-normalised; on a GPU when torch sees one, else CPU;
* Winnow's small default (``vectors.npy``): fastText skip-gram word vectors trained by ``make models`` and shipped
  in ``classifiers/default_models/semantic``, a document being the SIF-weighted mean of its words' vectors
  (Arora et al. 2017: weight a / (a + p(w)), the corpus' first principal components removed), L2-normalised.

Models are loaded once per worker process (:func:`load_encoder` caches by folder) and never pickled; nothing is
downloaded: a folder that is not on disk is an error that says what to give.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Protocol

import numpy as np

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_models", "semantic")
#: words of the SIF model: lower-cased runs of letters/digits (the same rule trains and encodes)
WORD = re.compile(r"\w+", re.UNICODE)
_CACHE: dict[str, Any] = {}


class Encoder(Protocol):
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row (no known word) stays zero, so it is similar to nothing."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


class SifEncoder:
    """SIF-weighted mean of word vectors (``vectors.npy`` V x d, ``vocab.txt`` word<TAB>count, ``meta.json``)."""

    def __init__(self, model_dir: str):
        self.vectors = np.load(os.path.join(model_dir, "vectors.npy")).astype(np.float32)
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        self.dim = int(self.vectors.shape[1])
        self.index = {w: i for i, (w, _) in enumerate(rows)}
        counts = np.array([float(c) for _, c in rows])
        a = float(meta.get("sif_a", 1e-3))
        self.weights = (a / (a + counts / counts.sum())).astype(np.float32)
        #: the training corpus' common directions (style, language), removed so topic and content remain
        self.pcs = np.array(
            meta.get("principal_components") or np.zeros((0, self.vectors.shape[1])), np.float32
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        indices: list[int] = []
        indptr = [0]
        for text in texts:
            ids = [i for i in (self.index.get(w) for w in words(text or "")) if i is not None]
            indices += ids
            indptr.append(len(indices))
        idx = np.array(indices, np.int64)
        lengths = np.diff(indptr)
        data = self.weights[idx] / np.repeat(np.maximum(lengths, 1), lengths).astype(np.float32)
        m = csr_matrix((data, idx, np.array(indptr)), shape=(len(texts), len(self.vectors)))
        x = np.asarray(m @ self.vectors, np.float32)
        for pc in self.pcs:
            x -= np.outer(x @ pc, pc)
        x[lengths == 0] = 0.0
        return normalise(x)


class HFEncoder:
    """A local Hugging Face encoder: mean of the last hidden states over real tokens, L2-normalised."""

    def __init__(self, model_dir: str, batch_size: int = 32, max_length: int = 512):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(self.device).eval()
        self.batch_size, self.max_length = batch_size, max_length
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    [t or "" for t in texts[i : i + self.batch_size]],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(mean.float().cpu().numpy())
        return normalise(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))


def model_folder(model_dir: str | None) -> str:
    """The configured folder, or the shipped default; an absent folder is an error that says what to give."""
    folder = model_dir or DEFAULT_DIR
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"semantic dedup model folder {folder} does not exist: give model_dir: a local Hugging Face encoder "
            "checkpoint (config.json + weights) or a folder from `make models` (vectors.npy); nothing is downloaded"
        )
    return os.path.abspath(folder)


def model_identity(model_dir: str | None) -> dict[str, Any]:
    """What names a model in a work folder's fingerprint: its folder and its files' sizes."""
    folder = model_folder(model_dir)
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
    return {"model": folder, "files": sizes}


def load_encoder(model_dir: str | None) -> Encoder:
    """The encoder of a model folder, loaded once per process."""
    folder = model_folder(model_dir)
    if folder not in _CACHE:
        if os.path.exists(os.path.join(folder, "config.json")):
            _CACHE[folder] = HFEncoder(folder)
        elif os.path.exists(os.path.join(folder, "vectors.npy")):
            _CACHE[folder] = SifEncoder(folder)
        else:
            raise FileNotFoundError(
                f"{folder} is neither a Hugging Face checkpoint (config.json) nor a Winnow word-vector model "
                "(vectors.npy, vocab.txt, meta.json)"
            )
    return _CACHE[folder]
