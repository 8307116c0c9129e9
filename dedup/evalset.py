"""Evaluation sets for near-dup detection built from real text, with planted near-duplicates and exact truth.

Paragraphs come from a sample folder the caller names, laid out as ``wikipedia/enwiki-latest-*.bz2``,
``stackexchange/*/Posts.xml`` and ``commoncrawl/text/**/*.jsonl`` (English Wikipedia wikitext, StackExchange posts,
CCNet CommonCrawl text).
A base document is a random run of real paragraphs; a planted near-duplicate is a copy with word-level edits
(substitute, delete, insert) at a known rate.  Ground truth is the exact Jaccard of 5-gram shingle sets of every pair
of documents, computed by brute force as a sparse product (``X @ X.T``).
"""

from __future__ import annotations

import bz2
import glob
import html
import json
import os
import re
import xml.etree.ElementTree as ET

import numpy as np

_TAG = re.compile(r"<[^>]+>")


def real_paragraphs(corpus: str, min_words: int = 12) -> list[str]:
    """Paragraphs of real text from ``corpus`` (a sample folder laid out as above); sorted for determinism."""
    paras: list[str] = []
    for path in sorted(glob.glob(os.path.join(corpus, "wikipedia", "enwiki-latest-*.bz2"))):
        with bz2.open(path, "rt", encoding="utf-8") as f:
            for m in re.finditer(r"<text[^>]*>(.*?)</text>", f.read(), re.S):
                paras += html.unescape(m.group(1)).split("\n\n")
    for path in sorted(glob.glob(os.path.join(corpus, "stackexchange", "*", "Posts.xml"))):
        for _, el in ET.iterparse(path):
            if el.tag == "row" and el.get("Body"):
                paras += _TAG.sub(" ", html.unescape(el.get("Body", ""))).split("\n\n")
            el.clear()
    for path in sorted(glob.glob(os.path.join(corpus, "commoncrawl", "text", "*", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                paras += json.loads(line).get("text", "").split("\n")
    out = [" ".join(p.split()) for p in paras]
    return sorted({p for p in out if len(p.split()) >= min_words})


def edit_words(text: str, rate: float, rng: np.random.Generator, vocab: list[str]) -> str:
    """Apply word edits at ``rate`` (a third each substitutions, deletions and insertions)."""
    words = text.split()
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            out.append(vocab[rng.integers(len(vocab))])
        elif r < 2 * rate / 3:
            continue
        elif r < rate:
            out += [w, vocab[rng.integers(len(vocab))]]
        else:
            out.append(w)
    return " ".join(out)


def make_documents(
    paragraphs: list[str],
    n_docs: int,
    dup_frac: float = 0.2,
    rates: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15),
    seed: int = 0,
    paras_per_doc: tuple[int, int] = (3, 8),
) -> dict[str, list]:
    """``{"id", "text", "dup_of", "rate"}`` columns: ``n_docs`` documents, ``dup_frac`` of them planted copies."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for p in paragraphs[:2000] for w in p.split()})
    n_dup = int(n_docs * dup_frac)
    n_base = n_docs - n_dup
    texts: list[str] = []
    for _ in range(n_base):
        k = int(rng.integers(paras_per_doc[0], paras_per_doc[1] + 1))
        start = int(rng.integers(0, len(paragraphs)))
        idx = [(start + j * int(rng.integers(1, 50))) % len(paragraphs) for j in range(k)]
        texts.append("\n\n".join(paragraphs[i] for i in idx))
    dup_of = [-1] * n_base
    rate = [0.0] * n_base
    for _ in range(n_dup):
        src = int(rng.integers(0, n_base))
        r = float(rates[int(rng.integers(len(rates)))])
        texts.append("\n\n".join(edit_words(p, r, rng, vocab) for p in texts[src].split("\n\n")))
        dup_of.append(src)
        rate.append(r)
    order = rng.permutation(n_docs)
    ids = [f"doc-{i:07d}" for i in range(n_docs)]
    pos = np.empty(n_docs, dtype=np.int64)
    pos[order] = np.arange(n_docs)
    return {
        "id": [ids[pos[i]] for i in range(n_docs)],
        "text": texts,
        "dup_of": [ids[pos[d]] if d >= 0 else None for d in dup_of],
        "rate": rate,
    }


def exact_jaccard_pairs(texts: list[str], ngram: int = 5, min_j: float = 0.5) -> dict[tuple[int, int], float]:
    """Every pair ``(i, j)``, ``i < j``, with exact shingle Jaccard >= ``min_j`` (brute force, sparse product)."""
    from scipy import sparse

    from dedup.text import shingle_hashes

    h, off = shingle_hashes(texts, ngram)
    rows, cols = [], []
    for i in range(len(texts)):
        u = np.unique(h[off[i] : off[i + 1]])
        rows.append(np.full(len(u), i))
        cols.append(u)
    r = np.concatenate(rows)
    c_vals, c = np.unique(np.concatenate(cols), return_inverse=True)
    x = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(texts), len(c_vals)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = jac >= min_j
    return {
        (int(a), int(b)): float(j)
        for a, b, j in zip(inter.row[keep], inter.col[keep], jac[keep], strict=True)
    }


def pair_metrics(
    truth: dict[tuple[int, int], float],
    found_edges: set[tuple[int, int]],
    cluster: np.ndarray,
    bands: tuple[float, ...] = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01),
    threshold: float = 0.8,
) -> dict:
    """Recall per Jaccard band (pair counted if both ends share a cluster) and edge precision at ``threshold``."""
    rows = []
    for lo, hi in zip(bands[:-1], bands[1:], strict=True):
        pairs = [p for p, j in truth.items() if lo <= j < hi]
        hit = sum(1 for a, b in pairs if cluster[a] >= 0 and cluster[a] == cluster[b])
        rows.append(
            {
                "band": f"[{lo:.2f}, {min(hi, 1.0):.2f}]",
                "pairs": len(pairs),
                "recall": round(hit / len(pairs), 4) if pairs else None,
            }
        )
    good = sum(1 for e in found_edges if truth.get(e, 0.0) >= threshold)
    hi_pairs = [p for p, j in truth.items() if j >= 0.85]
    hi_hit = sum(1 for a, b in hi_pairs if cluster[a] >= 0 and cluster[a] == cluster[b])
    return {
        "bands": rows,
        "edges": len(found_edges),
        "edge_precision": round(good / len(found_edges), 4) if found_edges else None,
        "recall_j085": round(hi_hit / len(hi_pairs), 4) if hi_pairs else None,
    }
