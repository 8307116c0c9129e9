"""Semantic dedup, passes 1 and 2: embeddings (a float16 sidecar per docs file) and the k-means fit on a bounded,
hash-chosen sample (see :mod:`dedup.semantic` for the whole workflow)."""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from classifiers.embeddings import load_encoder, model_identity
from dedup import corpus
from dedup.minhash import check_settings
from dedup.text import mix64
from filters.languages import check_languages
from pipelines.core.folder import Folder, split
from pipelines.core.storage import join

#: fewer clusters than configured when the sample is small (a small corpus is compared as one cluster)
MIN_CLUSTER_DOCS = 100
#: the languages of the shipped encoder's training text (classifiers/default_models/MANIFEST.md: English)
DEFAULT_MODEL_LANGUAGES = ["en"]


@dataclass
class SemanticConfig:
    """Settings of the semantic dedup workflow (the ``semantic_dedup`` section of a config)."""

    #: cosine from which two documents are duplicates
    threshold: float = 0.95
    #: pairs from this cosine are recorded (with ``kept`` false below ``threshold``), so a lower threshold can be
    #: re-chosen in DuckDB from ``duplicates/semantic_dedup.pairs.parquet``; default: threshold - 0.05
    record_threshold: float | None = None
    #: K k-means clusters; only documents of one cluster are compared (cost ~ N^2 / K)
    clusters: int = 64
    #: documents the k-means is fitted on (those of smallest seeded hash): bounds the driver's memory
    sample: int = 20000
    #: each document goes to its this-many nearest clusters (2: pairs across a boundary are found too)
    assign_to: int = 1
    kmeans_iter: int = 20
    seed: int = 1
    #: a local Hugging Face encoder checkpoint, or a folder from `make models`; null: the shipped default
    model_dir: str | None = None
    #: documents embedded at once
    batch_rows: int = 512
    #: rows of a cluster compared at once (memory of a search task: ~block x cluster size x 4 bytes)
    block_rows: int = 2048
    #: survivor: a reference doc, the best score (``score_order``), the longest text, the smallest id
    score_column: str | None = None
    score_order: str = "max"
    text_column: str = "text"
    id_column: str = "id"
    #: R partitions of the pair shuffle, components and survivors; M embedding/assignment tasks
    partitions: int = 16
    tasks: int = 16
    executor: str = "auto"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: documents of these Parquet dirs/globs are matched against but never removed
    references: list[str] = field(default_factory=list)
    #: a column (``lang``) whose values split the corpus: documents are compared only within one value (a file
    #: without it counts as null); None: one corpus; ``auto`` is resolved by the source recipe
    partition_by: str | None = None
    #: languages the encoder knows: a document whose ``language_column`` holds another one is not embedded (left
    #: unscored, never paired; ``skipped_language`` in the stats); null values are embedded.  ``auto``: the shipped
    #: model's (English) when ``model_dir`` is null, else ``all`` (name a multilingual checkpoint for other languages)
    languages: list[str] | str = "auto"
    language_column: str = "lang"

    def __post_init__(self) -> None:
        check_settings(self.executor, self.score_order, self.partitions, self.tasks)
        if self.languages == "auto":
            self.languages = list(DEFAULT_MODEL_LANGUAGES) if self.model_dir is None else "all"
        if isinstance(self.languages, str):
            self.languages = [self.languages]
        check_languages(self.languages, "semantic_dedup.languages")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"semantic_dedup.threshold must be a cosine in (0, 1], got {self.threshold}")
        if self.clusters < 1 or self.sample < 1:
            raise ValueError("semantic_dedup.clusters and .sample must be at least 1")
        if self.partition_by == "auto":
            raise ValueError(
                "semantic_dedup partition_by: 'auto' is resolved by the source recipe; give a column or null"
            )

    @property
    def floor(self) -> float:
        return min(
            self.threshold, self.threshold - 0.05 if self.record_threshold is None else self.record_threshold
        )

    def identity(self) -> dict[str, Any]:
        skip = ("executor", "workers", "batch_rows", "block_rows", "references")
        return {k: v for k, v in asdict(self).items() if k not in skip} | {
            "model": model_identity(self.model_dir)
        }


def sidecar(work: str, f: corpus.InputFile, kind: str = "") -> str:
    """``emb/<file key>.npy`` (the vectors) or ``emb/<file key>.part.npy`` (hash of each row's partition value)."""
    return join(work, "emb", f"{f.key}{kind}.npy")


def part_hashes(values: list[Any]) -> np.ndarray:
    """uint64 per partition value (null: 0), so rows of one value sort together."""
    return np.fromiter(
        (0 if v is None else xxhash.xxh3_64_intdigest(str(v).encode()) for v in values),
        np.uint64,
        len(values),
    )


def _save_npy(path: str, array: np.ndarray) -> None:
    folder, name = split(path)
    with folder.open_output(name) as fh:
        np.save(fh, array)


def load_npy(path: str) -> Any:
    """An array saved by :func:`_save_npy` (or an ``.npz``), local or in a bucket: the whole file in one read."""
    folder, name = split(path)
    return np.load(io.BytesIO(folder.read_bytes(name)))


def _sample_hash(g: np.ndarray, seed: int) -> np.ndarray:
    return mix64(g.astype(np.uint64) ^ mix64(np.full(len(g), seed, np.uint64)))


def embed_task(args: tuple[int, list[corpus.InputFile], SemanticConfig, str]) -> dict[str, Any]:
    """One group of files: a float16 sidecar per file, the doc table, the group's k-means sample candidates."""
    group, files, cfg, work = args
    if corpus.is_done(work, "embed", corpus.unit(group)):
        return corpus.read_marker(work, "embed", corpus.unit(group))
    encoder = load_encoder(cfg.model_dir)
    cols = list(
        dict.fromkeys([cfg.id_column, cfg.text_column] + ([cfg.score_column] if cfg.score_column else []))
    )
    facts, s_gid, s_vec = [], [], []
    n = skipped = 0
    for f in files:
        parts, keys = [], []
        names = corpus.parquet_file(f.path).schema_arrow.names
        part_col = cfg.partition_by if cfg.partition_by in names else None
        lang_col = (
            cfg.language_column if "all" not in cfg.languages and cfg.language_column in names else None
        )
        extra = [c for c in (part_col, lang_col) if c and c not in cols]
        for first, t in corpus.iter_batches(f.path, list(dict.fromkeys(cols + extra)), cfg.batch_rows):
            g = corpus.gids(f.index, first, t.num_rows)
            vecs, unknown = _encode_known(encoder, t, cfg, lang_col)
            skipped += unknown
            parts.append(vecs)
            keys.append(part_hashes(t.column(part_col).to_pylist() if part_col else [None] * t.num_rows))
            facts.append(
                corpus.doc_table(t, g, cfg.id_column, cfg.score_column, f.protected, cfg.text_column)
            )
            n += t.num_rows
        emb = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float16)
        _save_npy(sidecar(work, f, ".part"), np.concatenate(keys) if keys else np.zeros(0, np.uint64))
        _save_npy(sidecar(work, f), emb)
        g = corpus.gids(f.index, 0, len(emb))
        nonzero = np.abs(emb).sum(1) > 0
        best = np.argsort(_sample_hash(g, cfg.seed), kind="stable")
        best = best[nonzero[best]][: cfg.sample]
        s_gid.append(g[best])
        s_vec.append(emb[best])
    facts_t = pa.concat_tables(facts) if facts else corpus.DOC_TABLE_SCHEMA.empty_table()
    corpus.write_parquet_atomic(facts_t, join(work, "doctable", f"{corpus.unit(group)}.parquet"))
    sg = np.concatenate(s_gid) if s_gid else np.zeros(0, np.uint64)
    sv = np.concatenate(s_vec) if s_vec else np.zeros((0, encoder.dim), np.float16)
    keep = np.argsort(_sample_hash(sg, cfg.seed), kind="stable")[: cfg.sample]
    with Folder(join(work, "sample")).open_output(f"{corpus.unit(group)}.npz") as fh:
        np.savez(fh, gid=sg[keep], vec=sv[keep])
    info = {"group": group, "docs": n, "dim": int(encoder.dim), "skipped_language": skipped}
    corpus.mark_done(work, "embed", corpus.unit(group), info)
    return info


def _encode_known(
    encoder: Any, t: pa.Table, cfg: SemanticConfig, lang_col: str | None
) -> tuple[np.ndarray, int]:
    """float16 vectors of a batch; rows in a language the encoder does not know stay zero (never paired, as a
    document without known words), so an English model never calls two Chinese pages duplicates."""
    texts = t.column(cfg.text_column).to_pylist()
    if lang_col is None:
        return encoder.encode(texts).astype(np.float16), 0
    known = [lang is None or lang in cfg.languages for lang in t.column(lang_col).to_pylist()]
    out = np.zeros((len(texts), encoder.dim), np.float16)
    rows = [i for i, k in enumerate(known) if k]
    if rows:
        out[rows] = encoder.encode([texts[i] for i in rows]).astype(np.float16)
    return out, len(texts) - len(rows)


def fit_centroids(work: str, groups: int, cfg: SemanticConfig, dim: int) -> np.ndarray:
    """Spherical k-means on the bounded, hash-chosen sample (the driver's only data); ``centroids.npy``."""
    path = join(work, "centroids.npy")
    if corpus.is_done(work, "fit", "all"):
        return load_npy(path)
    from scipy.cluster.vq import kmeans2

    gid_l, vec_l = [], []
    for g in range(groups):
        with load_npy(join(work, "sample", f"{corpus.unit(g)}.npz")) as z:
            gid_l.append(z["gid"])
            vec_l.append(z["vec"])
    gid = np.concatenate(gid_l)
    order = np.lexsort((gid, _sample_hash(gid, cfg.seed)))[: cfg.sample]
    x = np.concatenate(vec_l).reshape(-1, dim)[order].astype(np.float64)
    # at least MIN_CLUSTER_DOCS sampled documents per cluster: 39 pages in 64 clusters would compare nothing
    k = min(cfg.clusters, len(x) // MIN_CLUSTER_DOCS, len(np.unique(x, axis=0))) if len(x) else 0
    if k <= 1:
        centroids = np.ones((1, dim), np.float32)  # one cluster: every document compared with every other
    else:
        rng = np.random.default_rng(cfg.seed)
        centroids, _ = kmeans2(x, k, iter=cfg.kmeans_iter, minit="++", rng=rng)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = (centroids / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    _save_npy(path, centroids)
    corpus.mark_done(work, "fit", "all", {"clusters": int(len(centroids)), "sample": int(len(x))})
    return centroids
