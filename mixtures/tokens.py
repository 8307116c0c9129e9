"""Token counts with a real tokenizer, offline, computed once per document and kept beside the docs.

``OUTPUT/<source>/tokens/<key>.parquet`` holds ``id, text_hash, n_tokens`` for ``docs/<key>.parquet`` (Dolma's
"attributes beside the documents").  A count is reused while the document's id and text hash are unchanged and the
tokenizer is the same, so rebuilding a mixture after a threshold change costs no tokenization.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from mixtures import sidecars, store
from pipelines.core.layout import readable_parquet

log = logging.getLogger(__name__)

TOKENS_SCHEMA = pa.schema([("id", pa.string()), ("text_hash", pa.uint64()), ("n_tokens", pa.int64())])


class TokenCounter:
    """Counts tokens of many texts at once: a quicktok encoding name (``llama3``) or a ``tokenizer.json`` path."""

    def __init__(self, name: str = "llama3", threads: int = 0):
        self.name = name
        self.threads = threads
        self._enc: Any = None

    def _load(self) -> Any:
        if self._enc is None:
            if self.name.endswith(".json"):
                if not os.path.exists(self.name):
                    raise FileNotFoundError(
                        f"tokenizer {self.name} not found: give a tokenizer.json path or 'llama3'"
                    )
                from tokenizers import Tokenizer

                self._enc = Tokenizer.from_file(self.name)
            else:
                try:
                    import quicktok
                except ImportError:
                    raise ImportError("token counting needs quicktok: pip install quicktok-v1") from None
                self._enc = quicktok.get_encoding(self.name)
        return self._enc

    @property
    def fingerprint(self) -> str:
        """Identifies the tokenizer in caches: the encoding name, or the json file's name and content hash."""
        if self.name.endswith(".json") and os.path.exists(self.name):
            with open(self.name, "rb") as f:
                return f"{os.path.basename(self.name)}:{xxhash.xxh64_hexdigest(f.read())}"
        return self.name

    def count(self, texts: Sequence[str | None]) -> np.ndarray:
        enc = self._load()
        clean = [t or "" for t in texts]
        if not clean:
            return np.zeros(0, dtype=np.int64)
        if self.name.endswith(".json"):
            return np.array(
                [len(e.ids) for e in enc.encode_batch(clean, add_special_tokens=False)], dtype=np.int64
            )
        import quicktok

        return np.asarray(quicktok.count_batch(enc, clean, threads=self.threads), dtype=np.int64)


@lru_cache(maxsize=8)
def get_counter(name: str) -> TokenCounter:
    return TokenCounter(name)


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.fromiter(
        (xxhash.xxh64_intdigest((t or "").encode()) for t in texts.to_pylist()),
        dtype=np.uint64,
        count=len(texts),
    )


def sidecar_path(docs_file: str) -> str:
    return sidecars.sidecar_path(docs_file, "tokens")


def _cached(path: str, tokenizer: str) -> dict[tuple[str, int], int]:
    if store.file_info(path) is None:
        return {}
    try:
        table = store.read_table(path)
    except Exception as exc:  # noqa: BLE001 - a broken cache is recomputed, never trusted
        log.warning("token cache %s unreadable (%s): recounting", path, exc)
        return {}
    meta = table.schema.metadata or {}
    if meta.get(b"tokenizer", b"").decode() != tokenizer:
        return {}
    return dict(
        zip(
            zip(table.column("id").to_pylist(), table.column("text_hash").to_pylist(), strict=True),
            table.column("n_tokens").to_pylist(),
            strict=True,
        )
    )


def ensure_token_counts(docs_file: str, counter: TokenCounter, batch_size: int = 2048) -> tuple[str, int]:
    """Make ``tokens/<key>.parquet`` current for one docs file; returns its path and how many docs were counted.

    A sidecar stamped with this tokenizer and the docs file's size and mtime is current without reading the docs;
    otherwise counts are reused per (id, text hash) and only new or changed texts are tokenized."""
    path = sidecar_path(docs_file)
    fp = counter.fingerprint
    stamped = sidecars.stamp(docs_file, tokenizer=fp)
    if sidecars.is_current(path, stamped):
        return path, 0
    cache = _cached(path, fp)
    pf = store.parquet_file(docs_file)
    ids: list[str] = []
    hashes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    counted = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=["id", "text"]):
        bid = batch.column("id").to_pylist()
        h = text_hashes(batch.column("text"))
        n = np.array([cache.get((i, int(x)), -1) for i, x in zip(bid, h, strict=True)], dtype=np.int64)
        todo = np.flatnonzero(n < 0)
        if len(todo):
            texts = batch.column("text").take(pa.array(todo)).to_pylist()
            n[todo] = counter.count(texts)
            counted += len(todo)
        ids += bid
        hashes.append(h)
        counts.append(n)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text_hash": pa.array(np.concatenate(hashes) if hashes else [], pa.uint64()),
            "n_tokens": pa.array(np.concatenate(counts) if counts else [], pa.int64()),
        },
        schema=TOKENS_SCHEMA,
    )
    sidecars.write_sidecar(path, table, stamped)
    return path, counted


def ensure_source_tokens(source_dir: str, counter: TokenCounter) -> tuple[list[str], list[str], int]:
    """Token sidecars for every docs file of a source: (docs files, sidecar files, docs counted now)."""
    # a truncated docs file (a crashed copy) is left out with a WARNING naming it; the pipeline's rerun redoes it
    docs = readable_parquet(sorted(glob.glob(os.path.join(source_dir, "docs", "*.parquet"))))
    sidecars, total = [], 0
    for d in docs:
        p, n = ensure_token_counts(d, counter)
        sidecars.append(p)
        total += n
    if total:
        log.info("%s: counted tokens of %d documents (%s)", source_dir, total, counter.name)
    return docs, sidecars, total
