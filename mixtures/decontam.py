"""Benchmark decontamination: a document sharing any word 13-gram with a benchmark item leaves the stage.

Text is normalised with datatrove's ``simplify_text`` (lowercase, punctuation and diacritics removed, numbers -> 0),
the same normalisation as datatrove's ``NGramsDecontFilter``, then split on spaces.  Each benchmark item (its
configured fields, in order, lists flattened) gives the n-grams of its words.  Documents are checked with a vectorised
rolling hash of word hashes; every hit is verified against the stored n-gram text, so a hash collision can never
remove a document.  Benchmark n-grams with fewer than 5 distinct non-number words are left out (they match number
tables, not the benchmark).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from datatrove.utils.text import simplify_text

from dedup.text import WordHasher
from mixtures.spec import BenchmarkSpec, DecontamSpec

log = logging.getLogger(__name__)

_MULT = np.uint64(0x9E3779B97F4A7C15)
#: a benchmark n-gram needs this many distinct words besides numbers to count: GSM8K arithmetic like
#: "2 + 3 + 4 ..." normalises to "0 0 0 ..." and would otherwise flag every numeric table in a book
MIN_DISTINCT_WORDS = 5


@dataclass(frozen=True)
class Match:
    benchmark: str
    item: str
    ngram: str
    n_matches: int


def normalise_words(text: str) -> list[str]:
    return [w for w in simplify_text(text or "").split(" ") if w]


def window_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of ``n`` consecutive words (polynomial over uint64, wrapping)."""
    m = len(word_hashes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    acc = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            acc = acc * _MULT + word_hashes[j : j + m]
    return acc


def _flatten(value: object) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flatten(v)
    else:
        yield str(value)


def read_benchmark(spec: BenchmarkSpec) -> Iterable[tuple[str, str]]:
    """(item id, text) per benchmark item from JSONL or CSV; the id is ``task_id`` when present, else the line."""
    if not os.path.exists(spec.path):
        raise FileNotFoundError(
            f"benchmark {spec.name}: {spec.path} not found (fix decontaminate.benchmarks)"
        )
    with open(spec.path, encoding="utf-8", newline="") as f:
        if spec.path.endswith(".csv"):
            rows: Iterable[dict] = csv.DictReader(f)
        else:
            rows = (json.loads(line) for line in f if line.strip())
        for i, row in enumerate(rows, 1):
            missing = [k for k in spec.fields if k not in row]
            if missing:
                raise ValueError(
                    f"benchmark {spec.name} ({spec.path}) item {i} has no field(s) {missing}; "
                    f"it has {sorted(row)}"
                )
            text = " ".join(t for k in spec.fields for t in _flatten(row[k]))
            yield str(row.get("task_id") or row.get("id") or i), text


class NGramIndex:
    """The n-grams of every benchmark item, keyed by rolling hash, with their text for verification."""

    def __init__(self, n: int = 13):
        self.n = n
        self._hash = WordHasher().hash_words  # dedup's memoised xxh64 of words
        self.entries: dict[int, tuple[str, str, str]] = {}  # hash -> (benchmark, item, ngram text)
        self.items: dict[str, int] = {}
        self.short_items: dict[str, int] = {}
        self.degenerate = 0  # benchmark n-grams left out: too few distinct words (number tables, repeats)
        self._keys = np.zeros(0, dtype=np.uint64)

    def add(self, benchmark: str, item: str, text: str) -> None:
        words = normalise_words(text)
        self.items[benchmark] = self.items.get(benchmark, 0) + 1
        if len(words) < self.n:
            self.short_items[benchmark] = self.short_items.get(benchmark, 0) + 1
            return
        for k, h in enumerate(window_hashes(self._hash(words), self.n).tolist()):
            gram = words[k : k + self.n]
            if (
                len(set(gram) - {"0"}) < MIN_DISTINCT_WORDS
            ):  # "0 0 0 ..." (numbers normalise to 0) is no evidence
                self.degenerate += 1
                continue
            self.entries.setdefault(h, (benchmark, item, " ".join(gram)))

    def freeze(self) -> NGramIndex:
        self._keys = np.array(sorted(self.entries), dtype=np.uint64)
        return self

    @classmethod
    def from_spec(cls, spec: DecontamSpec) -> NGramIndex:
        index = cls(spec.n)
        for b in spec.benchmarks:
            for item, text in read_benchmark(b):
                index.add(b.name, item, text)
        log.info("decontamination index: %d %d-grams from %s", len(index.entries), spec.n, index.items)
        return index.freeze()

    def match(self, text: str | None) -> Match | None:
        """The first benchmark n-gram found in ``text`` (verified word by word), with the count of hits."""
        if not len(self._keys):
            return None
        words = normalise_words(text or "")
        wh = window_hashes(self._hash(words), self.n)
        if not len(wh):
            return None
        pos = np.searchsorted(self._keys, wh)
        pos[pos >= len(self._keys)] = 0
        hits = np.flatnonzero(self._keys[pos] == wh)
        first: Match | None = None
        count = 0
        for k in hits.tolist():
            bench, item, ngram = self.entries[int(wh[k])]
            if " ".join(words[k : k + self.n]) == ngram:
                count += 1
                if first is None:
                    first = Match(bench, item, ngram, 0)
        return None if first is None else Match(first.benchmark, first.item, first.ngram, count)
