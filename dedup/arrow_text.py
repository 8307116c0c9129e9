"""``tokens_of`` for a whole Arrow batch at once, in Arrow's C++ kernels (utf8proc and RE2), where provably equal.

The Python path (:func:`dedup.text.tokens_of`) lowercases with ``str.lower``, replaces numbers with datatrove's
``regex`` pattern, punctuation with datatrove's table, then NFD and drops combining marks (``unicodedata``), then
splits on ``str.isspace`` whitespace.  Here every step is one kernel over the batch's text column, and every
character class is built from the Python side's own answer for every code point, not from RE2's or utf8proc's
Unicode tables (which follow other Unicode versions):

* numbers: ``\\p{Nd}`` as the ``regex`` module sees it, listed code point by code point;
* marks: category ``Mn`` per ``unicodedata``; whitespace: ``str.isspace``; punctuation: datatrove's table;
* ``utf8_lower`` and ``utf8_normalize("NFD")`` are compared with ``str.lower`` / ``unicodedata.normalize`` on every
  code point ``unicodedata`` knows.  A text holding one where they differ (``İ``), the capital sigma (``str.lower``
  makes it final ``ς`` by context), a code point ``unicodedata`` does not know (utf8proc may), or a combining
  character that is not ``Mn`` (canonical reordering could then differ) goes to the Python path instead.

Words are then dictionary-encoded, so each distinct word of the batch is hashed once (xxh64 of its UTF-8 bytes, as
:class:`dedup.text.WordHasher` does).  ``tests/dedup/test_arrow_text.py`` checks the agreement on real text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex
import xxhash
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION_TRANS

_U64 = np.uint64
_CAPITAL_SIGMA = 0x3A3
#: characters of scripts written without spaces between words (after ``simplify_text``'s mark stripping)
UNSPACED = (
    "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)


@dataclass(frozen=True)
class _Patterns:
    """RE2 patterns equal, code point by code point, to the Python path's steps."""

    route: str  # a character the Arrow path may treat differently
    numbers: str
    punct_or_space: str
    marks: str
    unspaced: str


def char_class(code_points: Iterable[int]) -> str:
    """An RE2 character class of exactly these code points, as ranges of ``\\x{...}`` escapes."""

    def esc(c: int) -> str:
        return f"\\x{{{c:x}}}"

    cps = sorted(set(code_points))
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(esc(cps[i]) if i == j else f"{esc(cps[i])}-{esc(cps[j])}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def _digits_as_regex_sees_them(chars: str) -> list[int]:
    """The code points of datatrove's ``\\p{Nd}`` (the ``regex`` module's tables, not ``unicodedata``'s)."""
    pattern = NUMBERS_PATTERN.pattern
    if pattern != r"\p{Nd}+([.,،٫⎖⎗⎘]{1}\p{Nd}+)?":
        raise RuntimeError(f"datatrove's NUMBERS_PATTERN changed ({pattern!r}): update dedup.arrow_text")
    return [ord(c) for c in regex.findall(r"\p{Nd}", chars)]


#: the classes as computed for the versions they name (computing them takes ~1 s, paid once per worker otherwise)
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unicode_classes.json")


def versions() -> dict[str, str]:
    """What the classes depend on: the Unicode tables of ``unicodedata``, ``regex`` and Arrow's utf8proc, and
    datatrove's patterns."""
    return {
        "unicodedata": unicodedata.unidata_version,
        "regex": metadata.version("regex"),
        "pyarrow": pa.__version__,
        "datatrove": metadata.version("datatrove"),
    }


@lru_cache(maxsize=1)
def patterns() -> _Patterns:
    """The shipped classes when they were computed for these versions, else computed now."""
    with contextlib.suppress(OSError, ValueError):
        with open(SHIPPED, encoding="utf-8") as f:
            shipped = json.load(f)
        if shipped.get("versions") == versions():
            return _Patterns(**shipped["patterns"])
    return compute_patterns()


def compute_patterns() -> _Patterns:
    """The classes from this interpreter's and this pyarrow's own answers for every code point."""
    cps = np.array([c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF])
    text = "".join(map(chr, cps.tolist()))
    cats = np.array(list(map(unicodedata.category, text)))
    known_cps = cps[cats != "Cn"]
    known = list(map(chr, known_cps.tolist()))
    arr = pa.array(known, pa.string())
    nfd = list(map(functools.partial(unicodedata.normalize, "NFD"), known))
    lower_diff = pc.not_equal(pc.utf8_lower(arr), pa.array([ch.lower() for ch in known], pa.string()))
    nfd_diff = pc.not_equal(pc.utf8_normalize(arr, "NFD"), pa.array(nfd, pa.string()))
    differ = pc.or_(lower_diff, nfd_diff).to_numpy(zero_copy_only=False)
    combining = np.array(list(map(unicodedata.combining, known))) != 0
    not_mn = cats[cats != "Cn"] != "Mn"
    # a text with any of these: a character Arrow lowers or decomposes otherwise, the capital sigma (final form
    # by context in Python), a code point unicodedata does not know, a combining character kept (reordering)
    route = [_CAPITAL_SIGMA, *known_cps[differ | (combining & not_mn)].tolist(), *cps[cats == "Cn"].tolist()]
    space = [m.start() for m in re.finditer(r"\s", text)]  # indices into ``cps``
    if any(c.isspace() != any(x.isspace() for x in d) for c, d in zip(known, nfd, strict=True)):
        raise RuntimeError("a canonical decomposition makes or unmakes whitespace: dedup.arrow_text.spaced")
    punct = [k for k, v in PUNCTUATION_TRANS.items() if v in (" ", 32)]
    if len(punct) != len(PUNCTUATION_TRANS):
        raise RuntimeError("datatrove's punctuation table maps to more than spaces: update dedup.arrow_text")
    digits = char_class(_digits_as_regex_sees_them(text))
    seps_cps = punct + cps[space].tolist()
    seps = char_class(seps_cps)
    return _Patterns(
        route=char_class(route),
        numbers=f"{digits}+(?:{char_class(ord(c) for c in '.,،٫⎖⎗⎘')}{digits}+)?",  # noqa: RUF001
        # a run of separators becomes one space (the same words); a lone plain space is left alone (most of them)
        punct_or_space=f"{seps}{{2,}}|{char_class(c for c in seps_cps if c != 32)}",
        marks=char_class(cps[cats == "Mn"].tolist()) + "+",
        unspaced=f"([{UNSPACED}])",
    )


def write_shipped() -> None:
    """Rewrite :data:`SHIPPED` for the installed versions (after upgrading pyarrow, regex or Python)."""
    with open(SHIPPED, "w", encoding="utf-8") as f:
        json.dump({"versions": versions(), "patterns": dataclasses.asdict(compute_patterns())}, f, indent=0)
        f.write("\n")


def needs_python(texts: pa.Array) -> np.ndarray:
    """bool per text: it holds a character the Arrow path is not proven to treat as ``tokens_of`` does (every
    such character is beyond ASCII, so ASCII texts are not searched)."""
    wide = pc.invert(pc.string_is_ascii(texts))
    out = np.zeros(len(texts), dtype=bool)
    if wide.null_count:
        wide = pc.fill_null(wide, False)
    if pc.any(wide).as_py():
        idx = np.flatnonzero(wide.to_numpy(zero_copy_only=False))
        hit = pc.match_substring_regex(texts.take(pa.array(idx)), patterns().route)
        out[idx] = hit.to_numpy(zero_copy_only=False)
    return out


def spaced(texts: pa.Array) -> pa.Array:
    """The Python path's ``_simple_unstripped`` of every text (null as empty), with every whitespace character
    already a plain space.  (Whitespace before or after NFD is the same: no canonical decomposition makes or
    unmakes whitespace, checked by :func:`patterns`.)"""
    p = patterns()
    x = pc.utf8_lower(pc.fill_null(texts, "") if texts.null_count else texts)
    x = pc.replace_substring_regex(x, p.numbers, "0")
    x = pc.replace_substring_regex(x, p.punct_or_space, " ")
    wide = pc.invert(pc.string_is_ascii(x))
    if pc.any(wide).as_py():  # NFD and marks only where there can be any
        y = pc.replace_substring_regex(pc.utf8_normalize(pc.filter(x, wide), "NFD"), p.marks, "")
        x = pc.replace_with_mask(x, wide, y)
    return x


def word_hashes(texts: pa.Array, tokenize: str = "words") -> tuple[np.ndarray, np.ndarray]:
    """``(xxh64 of every token, in order, uint64[T]; tokens per text, int64[n])`` of ``tokens_of`` over ``texts``.

    Only for texts where :func:`needs_python` is false."""
    p = patterns()
    x = spaced(texts)
    if tokenize == "auto":  # each unspaced-script character its own token: spaces around it, then split
        x = pc.replace_substring_regex(x, p.unspaced, r" \1 ")
    parts = pc.split_pattern(x, " ")
    flat = pc.list_flatten(parts)
    keep = pc.greater(pc.binary_length(flat), 0)  # a leading or trailing separator leaves an empty piece
    words = pc.filter(flat, keep)
    parent = pc.filter(pc.list_parent_indices(parts), keep).to_numpy()
    lengths = np.bincount(parent, minlength=len(texts)).astype(np.int64)
    if not len(words):
        return np.zeros(0, _U64), lengths
    enc = pc.dictionary_encode(
        words.cast(pa.large_binary() if pa.types.is_large_string(words.type) else pa.binary())
    )
    h = xxhash.xxh64_intdigest
    distinct = np.fromiter(map(h, enc.dictionary.to_pylist()), dtype=_U64, count=len(enc.dictionary))
    return distinct[enc.indices.to_numpy()], lengths
