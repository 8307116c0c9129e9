"""Benchmark decontamination: a document sharing any word 13-gram with a benchmark item leaves the stage.

Text is normalised as datatrove's ``simplify_text`` does (lowercase, punctuation and diacritics removed, numbers ->
0; ``dedup.text.words_of``, agreement-tested), the normalisation of datatrove's ``NGramsDecontFilter``, then split
into words.  A word n-gram is hashed as ``h = h * M + xxh64(word)`` over its words (uint64, wrapping; see
:data:`HASH_FUNCTION`), so the benchmark side can be shipped as sorted hash arrays instead of benchmark text
(``mixtures/benchmarks/``).  Documents are hashed a whole batch at once (one numpy pass over the batch's words) and
looked up with ``np.searchsorted``; with ~1e5 benchmark hashes a false hit needs a 64-bit collision (about 1e-14 per
n-gram).  Benchmark n-grams with fewer than 5 distinct non-number words are left out (they match number tables, not
the benchmark).

:func:`decontaminate_file` checks one docs file and keeps its matches in a sidecar Parquet beside the docs
(``OUTPUT/<source>/decontam/<key>.parquet``), so mixtures reuse them and a scheduler can run one task per file.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import xxhash
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION_TRANS

from dedup.text import _PUNCT_TO_SPACE, WordHasher, strip_diacritics, words_of
from mixtures import sidecars, store

log = logging.getLogger(__name__)

_MULT = np.uint64(0x9E3779B97F4A7C15)
_PREFIX_SHIFT = np.uint64(42)  # lookups first test the top 22 bits of a hash against the index's
#: a benchmark n-gram needs this many distinct words besides numbers to count: GSM8K arithmetic like
#: "2 + 3 + 4 ..." normalises to "0 0 0 ..." and would otherwise flag every numeric table in a book
MIN_DISTINCT_WORDS = 5
NORMALISATION = "datatrove simplify_text: lowercase, digits -> 0, punctuation -> space, diacritics stripped; split on whitespace"
HASH_FUNCTION = (
    "per word w: xxh64(utf-8 bytes of w, seed 0); per n-gram: h = 0, then h = h * 0x9E3779B97F4A7C15 + w for each "
    "word in order (uint64, wrapping)"
)
MATCH_SCHEMA = pa.schema(
    {
        "id": pa.string(),
        "benchmark": pa.string(),
        "item": pa.string(),
        "ngram": pa.string(),
        "n_matches": pa.int64(),
    }
)


NO_DECONTAMINATION = (
    "mixture %s: benchmark decontamination is OFF: no benchmarks configured (add decontaminate.benchmarks, e.g. "
    "[gsm8k, hellaswag, humaneval, mmlu], to the mixture YAML)"
)

#: a match row of the mixture's report: where the document sits in the mixture, then the match itself
DECONTAM_SCHEMA = pa.schema(
    [pa.field("mix_source", pa.string()), pa.field("origin", pa.string()), *MATCH_SCHEMA]
)


@dataclass(frozen=True)
class Match:
    benchmark: str
    item: str
    ngram: str
    n_matches: int


def normalise_words(text: str | None) -> list[str]:
    return words_of(text) if text else []


@lru_cache(maxsize=1)
def _whitespace() -> dict[int, str]:
    """Every character ``str.split()`` splits on, mapped to " ": after this, a split on " " (dropping empty
    strings) gives exactly ``str.split()``'s words."""
    return {c: " " for c in range(sys.maxunicode + 1) if chr(c).isspace() and c != 32}


_OTHER_PUNCT = {k: v for k, v in PUNCTUATION_TRANS.items() if v not in (" ", 32)}
#: NUMBERS_PATTERN (Unicode digits, an optional decimal separator, digits) as it acts on ASCII text
_ASCII_NUMBERS = re.compile(rb"[0-9]+(?:[.,][0-9]+)?")


@lru_cache(maxsize=1)
def _ascii_table() -> bytes:
    """A bytes.translate table: ASCII punctuation (datatrove's table) and ASCII whitespace -> space."""
    table = bytearray(range(256))
    for k, v in PUNCTUATION_TRANS.items():
        if k < 128 and v in (" ", 32):
            table[k] = 32
        elif k < 128 and k in _OTHER_PUNCT:
            raise ValueError("datatrove's punctuation table changed: update _ascii_table")
    for c in range(128):
        if chr(c).isspace():
            table[c] = 32
    return bytes(table)


def batch_words(texts: Sequence[str | None]) -> tuple[pa.Array, np.ndarray]:
    """The words of every text (``words_of``), flattened into one Arrow string array, and each text's word count.

    Each text is normalised in Python into bytes where every separator is a single space byte; the split, and
    everything after it, runs in numpy over the batch's bytes, so no Python object is made per word."""
    ws, ascii_table = _whitespace(), _ascii_table()
    norm: list[bytes] = []
    for t in texts:
        t = NUMBERS_PATTERN.sub("0", (t or "").lower())
        if t.isascii():  # one bytes.translate for punctuation and whitespace: the str path's result, faster
            norm.append(t.encode("ascii").translate(ascii_table))
            continue
        x = _PUNCT_TO_SPACE.sub(" ", t)
        x = strip_diacritics(x.translate(_OTHER_PUNCT) if _OTHER_PUNCT else x).translate(ws)
        norm.append(x.encode("utf-8", "surrogatepass"))
    buf = np.frombuffer(b" " + b" ".join(norm) + b" ", dtype=np.uint8)  # a space before, between and after
    space = buf == 32
    letter = ~space
    starts = np.flatnonzero(space[:-1] & letter[1:]) + 1  # first byte of each word
    ends = np.flatnonzero(letter[:-1] & space[1:]) + 1  # one past its last byte
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)  # words laid end to end, without the spaces
    np.cumsum(ends - starts, out=offsets[1:])
    data = buf[letter]
    words = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))
    doc_start = np.cumsum([0] + [len(x) + 1 for x in norm])  # each text's first byte in ``buf``
    return words, np.diff(np.searchsorted(starts, doc_start))


def window_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of ``n`` consecutive words: ``h = h * M + w`` over the window (uint64, wrapping).

    Computed by doubling (windows of 1, 2, 4, 8 words combined as ``left * M**len(right) + right``): about
    2 log2(n) array passes instead of 2n, the same values as the word-by-word form."""
    total = len(word_hashes)
    if total < n:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers = {
            1: np.asarray(word_hashes, dtype=np.uint64)
        }  # length L -> hash of the window of L at each k
        size = 1
        while size * 2 <= n:
            p = powers[size]
            powers[size * 2] = p[:-size] * _mpow(size) + p[size:]
            size *= 2
        acc, length = None, 0
        for size in sorted(powers, reverse=True):
            if length + size <= n:
                part = powers[size][length:]
                acc = part if acc is None else acc[: len(part)] * _mpow(size) + part
                length += size
    return acc[: total - n + 1]


@lru_cache(maxsize=64)
def _mpow(e: int) -> np.uint64:
    return np.uint64(pow(int(_MULT), e, 1 << 64))


def item_ngrams(words: list[str], n: int, hasher: WordHasher) -> tuple[np.ndarray, int]:
    """(hashes of the item's counted n-grams in order, how many degenerate n-grams were left out)."""
    hashes = window_hashes(hasher.hash_words(words), n)
    keep = [len(set(words[k : k + n]) - {"0"}) >= MIN_DISTINCT_WORDS for k in range(len(hashes))]
    return hashes[np.array(keep, dtype=bool)] if len(hashes) else hashes, keep.count(False)


class HashSet(Protocol):
    """One benchmark's sorted n-gram hashes with their items (``mixtures.benchmarks.BenchmarkHashes``)."""

    name: str
    n: int
    keys: np.ndarray
    items: np.ndarray
    item_ids: list[str]
    short_items: int
    degenerate: int

    @property
    def n_items(self) -> int: ...


class NGramIndex:
    """The n-gram hashes of every configured benchmark, sorted once, with benchmark and item per hash."""

    def __init__(self, sets: Sequence[HashSet], n: int = 13):
        for s in sets:
            if s.n != n:
                raise ValueError(
                    f"benchmark {s.name} holds {s.n}-gram hashes but decontaminate.n is {n}: rebuild it with "
                    f"`winnow benchmarks add {s.name} --n {n} ...`"
                )
        self.n = n
        self.names = [s.name for s in sets]
        self.item_ids = [s.item_ids for s in sets]
        self.items = {s.name: s.n_items for s in sets}
        self.short_items = {s.name: s.short_items for s in sets if s.short_items}
        self.degenerate = sum(s.degenerate for s in sets)
        keys = np.concatenate([s.keys for s in sets]) if sets else np.zeros(0, np.uint64)
        bench = (
            np.concatenate([np.full(len(s.keys), i, np.int32) for i, s in enumerate(sets)]) if sets else keys
        )
        items = np.concatenate([s.items for s in sets]) if sets else keys
        # a hash in several benchmarks belongs to the first one listed (np.unique returns first occurrences)
        self.keys, first = np.unique(keys, return_index=True)
        self.bench = np.asarray(bench, np.int32)[first]
        self.item = np.asarray(items, np.int32)[first]
        self._lookup_tables()
        self.fingerprint = xxhash.xxh64(
            self.keys.tobytes() + self.bench.tobytes() + "\0".join(self.names).encode() + bytes([n])
        ).hexdigest()

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:
        """What travels to a task: the sorted uint64 keys with their benchmark and item columns, not the 4 MiB
        prefix bitmap or the word-hash cache (rebuilt on arrival), so Ray stores one compact copy per build."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_hasher", "_prefix")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lookup_tables()

    def _lookup_tables(self) -> None:
        """The word-hash cache and the bitmap of key prefixes that lookups test first."""
        self._hasher = WordHasher()
        self._prefix = np.zeros(1 << (64 - int(_PREFIX_SHIFT)), dtype=bool)
        self._prefix[self.keys >> _PREFIX_SHIFT] = True

    def match(self, text: str | None) -> Match | None:
        return self.match_batch([text])[0]

    def match_batch(self, texts: Sequence[str | None]) -> list[Match | None]:
        """Per text: the first benchmark n-gram found in it, with the number of matching windows, or None."""
        n, out = self.n, [None] * len(texts)
        words, lengths = batch_words(texts)
        if not len(self.keys) or len(words) < n:
            return out
        enc = words.dictionary_encode()  # each distinct word of the batch is hashed once
        uniq = self._hasher.hash_words(enc.dictionary.to_pylist())
        # every window of the batch, crossing documents or not (those are dropped below, among the few hits)
        wh = window_hashes(uniq[np.asarray(enc.indices)], n)
        maybe = np.flatnonzero(self._prefix[wh >> _PREFIX_SHIFT])  # a 4 MiB bitmap of key prefixes first
        pos = np.searchsorted(self.keys, wh[maybe])
        pos[pos >= len(self.keys)] = 0
        found = self.keys[pos] == wh[maybe]
        hits, pos = maybe[found], pos[found]
        if not len(hits):
            return out
        ends = np.cumsum(lengths)
        doc = np.searchsorted(ends, hits, side="right")
        inside = hits + n <= ends[doc]  # a window that runs into the next document is no n-gram of either
        hits, doc, pos = hits[inside], doc[inside], pos[inside]
        docs, first, counts = np.unique(doc, return_index=True, return_counts=True)
        for d, f, c in zip(docs.tolist(), first.tolist(), counts.tolist(), strict=True):
            k, p = int(hits[f]), int(pos[f])
            b = int(self.bench[p])
            gram = " ".join(words.slice(k, n).to_pylist())
            out[d] = Match(self.names[b], self.item_ids[b][int(self.item[p])], gram, c)
        return out


def sidecar_path(docs_file: str) -> str:
    return sidecars.sidecar_path(docs_file, "decontam")


def decontaminate_file(docs_file: str, index: NGramIndex, batch_size: int = 4096) -> tuple[str, bool]:
    """Write ``decontam/<key>.parquet`` (the matched documents of one docs file) unless it is current.

    Returns (sidecar path, whether it was computed now).  The sidecar records the index fingerprint and the docs
    file's size and mtime, so a changed benchmark list or a rewritten docs file is checked again."""
    path = sidecar_path(docs_file)
    stamp = sidecars.stamp(docs_file, index=index.fingerprint)
    if sidecars.is_current(path, stamp):
        return path, False
    rows: list[dict[str, object]] = []
    for batch in store.parquet_file(docs_file).iter_batches(batch_size=batch_size, columns=["id", "text"]):
        ids = batch.column(0).to_pylist()
        for doc_id, m in zip(ids, index.match_batch(batch.column(1).to_pylist()), strict=True):
            if m is not None:
                rows.append({"id": doc_id, **m.__dict__})
    sidecars.write_sidecar(path, pa.Table.from_pylist(rows, schema=MATCH_SCHEMA), stamp)
    return path, True


def read_matches(sidecar: str) -> dict[str, Match]:
    """The matches of one docs file's sidecar, by id (few: most documents match nothing)."""
    return {r.pop("id"): Match(**r) for r in store.read_table(sidecar).to_pylist()}


def decontam_summary(stage: str, index: NGramIndex | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``decontamination`` entry: what was checked and removed, or a warning that nothing was."""
    if index is None:
        return {"enabled": False, "warning": NO_DECONTAMINATION % stage}
    by_bench: dict[str, int] = {}
    for r in rows:
        by_bench[r["benchmark"]] = by_bench.get(r["benchmark"], 0) + 1
    return {
        "enabled": True,
        "n": index.n,
        "benchmark_items": index.items,
        "items_shorter_than_n": index.short_items,
        "ngrams": len(index),
        "degenerate_ngrams_skipped": index.degenerate,
        "removed_by_benchmark": dict(sorted(by_bench.items())),
        "removed": len(rows),
    }
