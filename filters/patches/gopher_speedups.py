"""Faster, result-identical n-gram counting for datatrove's Gopher repetition filter.

``GopherRepetitionFilter.filter`` (datatrove) builds every word n-gram of a document as a new string, for n = 2..4
(``" ".join``, counted for the most frequent one) and n = 5..10 (``"".join``, greedy repeated-character count).  On the
CommonCrawl bench that is about half of the rule's time.  ``install()`` replaces the three module-level helpers the
filter calls (``get_n_grams``, ``find_top_duplicate``, ``find_all_duplicate``); the filter's own logic, thresholds and
reasons stay datatrove's:

* top n-gram: when no word contains a space, ``" ".join`` is injective over word sequences, so n-grams are compared as
  rows of word ids (numpy ``unique`` over a sliding window) and no string is built; ties go to the n-gram seen first,
  as ``Counter.most_common(1)`` does.  Any word with a space falls back to datatrove's own functions.
* repeated n-grams: ``"".join`` is *not* injective (``ab|c`` equals ``a|bc``), so the same greedy walk runs over
  slices of the concatenated words (one slice instead of a list slice plus a join per position): same strings, same
  comparisons, same result.

``tests/filters/test_cc_steps.py`` compares both helpers with datatrove's on real documents and edge cases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa
from datatrove.pipeline.filters import gopher_repetition_filter as _datatrove

from filters.patches import version_tested

#: datatrove releases these helpers were checked on (tests/filters/test_cc_steps.py compares them with datatrove's)
TESTED_VERSIONS = ("0.10.1",)
_INSTALLED = False
_LAST: dict[str, tuple[list[str], Any]] = {}
#: base of the character hashes of find_all_duplicate's fast path (odd, so invertible mod 2**64)
_BASE = np.uint64(0x100000001B3)
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
#: datatrove's own helpers, taken before install() replaces them
_ORIGINAL: dict[str, Any] = {
    name: getattr(_datatrove, name) for name in ("get_n_grams", "find_top_duplicate", "find_all_duplicate")
}


class NGrams:
    """The n-grams of ``words`` as ``get_n_grams`` would list them, without building them."""

    __slots__ = ("words", "n")

    def __init__(self, words: list[str], n: int):
        self.words, self.n = words, n

    def __len__(self) -> int:
        return max(0, len(self.words) - self.n + 1)

    def materialize(self) -> list[str]:
        return _ORIGINAL["get_n_grams"](self.words, self.n)


def get_n_grams(words: list[str], n: int) -> NGrams:
    return NGrams(words, n)


def find_top_duplicate(x: Any) -> int:
    """``len(top n-gram) * its count``, the top one being the most frequent, first seen on ties."""
    if not isinstance(x, NGrams):
        return _ORIGINAL["find_top_duplicate"](x)
    words, n = x.words, x.n
    if " " in _joined(words)[0]:  # some word holds a space (the join of all words does iff one does)
        return _ORIGINAL["find_top_duplicate"](x.materialize())
    ids = _word_ids(words)
    vocab = int(ids.max()) + 1 if len(ids) else 1
    if (
        vocab**n < 2**63
    ):  # the n ids packed into one int64 (base = vocabulary size): sorts far faster than bytes
        keys = ids[: len(ids) - n + 1].copy()
        for j in range(1, n):
            keys *= vocab
            keys += ids[j : len(ids) - n + 1 + j]
    else:
        rows = np.lib.stride_tricks.sliding_window_view(ids, n)
        keys = np.ascontiguousarray(rows).view(np.dtype((np.void, 8 * n))).ravel()
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    best = counts.max()
    start = int(first[counts == best].min())
    chars = sum(len(w) for w in words[start : start + n]) + n - 1
    return chars * int(best)


def _per_words(key: str, words: list[str], make: Any) -> Any:
    """``make(words)``, remembered for the last ``words`` list seen (the filter asks for n = 2..4, then 5..10, of one
    document's words); the list itself is held, so its identity cannot be taken by another list meanwhile."""
    held = _LAST.get(key)
    if held is not None and held[0] is words:
        return held[1]
    value = make(words)
    _LAST[key] = (words, value)
    return value


def _word_ids(words: list[str]) -> np.ndarray:
    def make(ws: list[str]) -> np.ndarray:
        # ids in order of first appearance (Arrow's dictionary encoding numbers them so, in C++)
        try:
            return (
                pa.array(ws, type=pa.large_string()).dictionary_encode().indices.to_numpy().astype(np.int64)
            )
        except UnicodeEncodeError:  # a lone surrogate (a caller's own list: Arrow text never holds one)
            vocab: dict[str, int] = {}
            return np.fromiter((vocab.setdefault(w, len(vocab)) for w in ws), np.int64, len(ws))

    return _per_words("ids", words, make)


def _joined(words: list[str]) -> tuple[str, list[int]]:
    return _per_words("joined", words, lambda ws: ("".join(ws), [0, *accumulate(len(w) for w in ws)]))


def _char_hashes(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polynomial prefix hashes (mod 2**64) of ``"".join(words)``, with the powers that normalise a slice's hash."""

    def make(ws: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        joined, ends = _joined(ws)
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(len(codes), _BASE, dtype=np.uint64))  # B**1 .. B**len
            prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
            np.cumsum(codes * np.r_[np.uint64(1), powers[:-1]], out=prefix[1:])  # sum c_k * B**k
            inverse = np.r_[np.uint64(1), np.cumprod(np.full(len(codes), _BASE_INV, dtype=np.uint64))]
        return prefix, inverse, np.asarray(ends, dtype=np.int64)

    return _per_words("hashes", words, make)


def _all_distinct(words: list[str], n: int) -> bool:
    """Whether every ``"".join`` of ``n`` consecutive words differs from every other.  Distinct hashes prove distinct
    strings; equal hashes (a repeat, or a 2**-64 collision) answer False and the exact walk decides."""
    prefix, inverse, ends = _char_hashes(words)
    start, stop = ends[: len(ends) - n], ends[n:]
    with np.errstate(over="ignore"):
        grams = (prefix[stop] - prefix[start]) * inverse[start]  # hash of the slice, shifted to start at B**0
    return len(np.unique(grams)) == len(grams)


def find_all_duplicate(words: list[str], n: int) -> int:
    """datatrove's greedy walk (skip ``n`` words after a repeat), over slices of ``"".join(words)``."""
    joined, ends = _joined(words)
    n_words = len(words)
    if n_words - n + 1 > 1 and _all_distinct(words, n):
        return 0  # no n-gram string occurs twice: the walk below would count nothing
    unique: set[str] = set()
    repeated, idx = 0, 0
    while idx < n_words - n + 1:
        gram = joined[ends[idx] : ends[idx + n]]
        if gram in unique:
            repeated += len(gram)
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return repeated


def install() -> bool:
    """Swap the helpers in datatrove's gopher_repetition_filter module (idempotent); True when installed now."""
    global _INSTALLED
    if _INSTALLED or not version_tested(
        "datatrove", TESTED_VERSIONS, "Gopher n-gram speed-ups (filters/patches)"
    ):
        return False
    mod = _datatrove
    mod.get_n_grams = get_n_grams
    mod.find_top_duplicate = find_top_duplicate
    mod.find_all_duplicate = find_all_duplicate
    _INSTALLED = True
    return True


@contextlib.contextmanager
def datatrove_original() -> Iterator[None]:
    """datatrove's own helpers for the duration (tests compare against them)."""
    current = {name: getattr(_datatrove, name) for name in _ORIGINAL}
    for name, fn in _ORIGINAL.items():
        setattr(_datatrove, name, fn)
    try:
        yield
    finally:
        for name, fn in current.items():
            setattr(_datatrove, name, fn)
