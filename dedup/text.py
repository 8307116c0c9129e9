"""Text normalisation and vectorised shingle hashing shared by every dedup kind.

Documents are normalised as datatrove's ``simplify_text`` does (lowercase, numbers → 0, punctuation → space,
whitespace collapsed, diacritics stripped), reusing datatrove's own patterns so the two agree; the diacritic step is
one regex class of the combining marks instead of a per-character generator (same result).  Words are split on
whitespace (datatrove runs spaCy here, which dominates its MinHash time).  A batch is tokenized by Arrow's kernels
(:mod:`dedup.arrow_text`, ~2x faster than this module's per-text path, which stays the definition and takes the
texts those kernels are not proven equal on).  Word n-gram shingles are hashed with numpy over a whole batch at
once: each distinct word is hashed once with xxh64, then n consecutive word hashes are mixed.

Scripts written without spaces (Han, kana, Thai, Lao, Khmer, Burmese, Tibetan) have no whitespace words: a whole
clause would be one "word", so a one-sentence edit changes every shingle around it.  ``tokenize="auto"`` makes each
of their characters a token (character n-grams there, word n-grams elsewhere, also inside one mixed page): no
tokenizer model, no language label needed, and ~7x faster than MinHash over jieba words (bench_cjk_shingles.py).
Text without those characters gives exactly the tokens of ``"words"``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import xxhash
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION_TRANS, WHITESPACE_PATTERN

from dedup import arrow_text
from dedup.arrow_text import UNSPACED

_U64 = np.uint64
# odd 64-bit multipliers: one per position inside an n-gram (n <= 16), then a finaliser (splitmix64 constants)
_POS_MULT = np.array(
    [(0x9E3779B97F4A7C15 * (2 * i + 1) + 0x632BE59BD9B4E019 * i) % 2**64 | 1 for i in range(16)], dtype=_U64
)
# datatrove's punctuation table as one regex class: same result as ``str.translate``, ~2.5x faster
_PUNCT_TO_SPACE = re.compile(
    "[" + "".join(re.escape(chr(k)) for k, v in PUNCTUATION_TRANS.items() if v in (" ", 32)) + "]"
)
_PUNCT_OTHER = {k: v for k, v in PUNCTUATION_TRANS.items() if v not in (" ", 32)}
_MIX1, _MIX2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_UNSPACED = UNSPACED
#: one such character, or a run of anything else up to whitespace (4x faster than inserting spaces and splitting)
_AUTO_TOKEN = re.compile(f"[{_UNSPACED}]|[^\\s{_UNSPACED}]+")
#: shingle tokenizations: whitespace words, or words with unspaced scripts split into characters
TOKENIZE = ("words", "auto")


@lru_cache(maxsize=1)
def _marks() -> re.Pattern[str]:
    """Every combining mark (category Mn per ``unicodedata``) as one regex class (the Arrow path's, rewritten for
    ``re``): ``str.translate``'s result with a dict of every mark, ~5x faster."""
    re2 = arrow_text.patterns().marks
    return re.compile(re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\U{int(m[1], 16):08x}", re2))


def strip_diacritics(text: str) -> str:
    if text.isascii():
        return text
    return _marks().sub("", unicodedata.normalize("NFD", text))


def simplify_text(text: str) -> str:
    """datatrove's ``simplify_text`` with its default config (see tests for the agreement check)."""
    text = WHITESPACE_PATTERN.sub(" ", _strip_punct(NUMBERS_PATTERN.sub("0", text.lower())).strip())
    return strip_diacritics(text).strip()


def _strip_punct(text: str) -> str:
    text = _PUNCT_TO_SPACE.sub(" ", text)
    return text.translate(_PUNCT_OTHER) if _PUNCT_OTHER else text


def words_of(text: str) -> list[str]:
    """The words of ``simplify_text(text)`` (whitespace collapsing is left to ``split``)."""
    return _simple_unstripped(text).split()


def _simple_unstripped(text: str) -> str:
    return strip_diacritics(_strip_punct(NUMBERS_PATTERN.sub("0", text.lower())))


def tokens_of(text: str, tokenize: str = "words") -> list[str]:
    """The shingle tokens of ``text``: ``words_of``, with ``"auto"`` every character of an unspaced script its own
    token."""
    simple = _simple_unstripped(text)
    if tokenize == "auto" and not simple.isascii():
        return _AUTO_TOKEN.findall(simple)
    return simple.split()


def check_tokenize(tokenize: str) -> None:
    if tokenize not in TOKENIZE:
        raise ValueError(f"dedup tokenize must be one of {', '.join(TOKENIZE)}, got {tokenize!r}")


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrapping arithmetic is intended)."""
    x = x ^ (x >> _U64(30))
    x = x * _MIX1
    x = x ^ (x >> _U64(27))
    x = x * _MIX2
    return x ^ (x >> _U64(31))


class WordHasher:
    """xxh64 of words with a per-process cache (bounded), so each distinct word is hashed once."""

    def __init__(self, max_cache: int = 2_000_000):
        self.cache: dict[str, int] = {}
        self.max_cache = max_cache

    def hash_words(self, words: list[str]) -> np.ndarray:
        cache = self.cache
        if len(cache) > self.max_cache:
            cache.clear()
        new = set(words).difference(cache)
        h = xxhash.xxh64_intdigest
        for w in new:
            cache[w] = h(w.encode("utf-8", "surrogatepass"))
        return np.fromiter(map(cache.__getitem__, words), dtype=_U64, count=len(words))


_HASHER = WordHasher()


Texts = Sequence[str] | pa.Array | pa.ChunkedArray


def token_hashes(
    texts: Texts, tokenize: str = "words", hasher: WordHasher | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(xxh64 of every token of every text, uint64[T]; tokens per text, int64[n])``, tokens of :func:`tokens_of`.

    A batch goes through Arrow's kernels (:mod:`dedup.arrow_text`), except the texts holding a character where
    those are not proven equal to the Python path (and a batch with lone surrogates, which Arrow cannot hold)."""
    arr = _as_arrow(texts)
    if arr is None:
        return _python_token_hashes([t or "" for t in texts], tokenize, hasher)  # type: ignore[union-attr]
    slow = arrow_text.needs_python(arr)
    if not slow.any():
        return arrow_text.word_hashes(arr, tokenize)
    fast, rest = np.flatnonzero(~slow), np.flatnonzero(slow)
    wf, lf = arrow_text.word_hashes(arr.take(pa.array(fast)), tokenize)
    ws, ls = _python_token_hashes([t or "" for t in arr.take(pa.array(rest)).to_pylist()], tokenize, hasher)
    lengths = np.empty(len(arr), dtype=np.int64)
    lengths[fast], lengths[rest] = lf, ls
    starts = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    wh = np.empty(starts[-1], dtype=_U64)
    wh[spans(starts[fast], lf)] = wf
    wh[spans(starts[rest], ls)] = ws
    return wh, lengths


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] + k`` for ``k < lengths[i]``, span after span."""
    before = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - before, lengths)


def _as_arrow(texts: Texts) -> pa.Array | None:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if isinstance(texts, pa.Array):
        return (
            texts
            if pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
            else texts.cast(pa.string())
        )
    try:
        return pa.array(texts, pa.string())
    except (
        pa.ArrowException,
        UnicodeError,
    ):  # lone surrogates: the Python path encodes them as surrogatepass
        return None


def _python_token_hashes(
    texts: list[str], tokenize: str, hasher: WordHasher | None
) -> tuple[np.ndarray, np.ndarray]:
    words: list[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        w = tokens_of(t, tokenize) if t else []
        lengths[i] = len(w)
        words.extend(w)
    return (hasher or _HASHER).hash_words(words), lengths


def shingle_hashes(
    texts: Texts, n: int = 5, hasher: WordHasher | None = None, tokenize: str = "words"
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the token n-grams of every text (tokens: :func:`tokens_of`), concatenated, and the offsets of each
    text's slice.

    A text with fewer than ``n`` words (but at least one) gets a single shingle of all its words; an empty text gets
    none.  Returns ``(hashes uint64[S], offsets int64[len(texts)+1])``.
    """
    if not 1 <= n <= len(_POS_MULT):
        raise ValueError(f"n-gram size must be between 1 and {len(_POS_MULT)}, got {n}")
    check_tokenize(tokenize)
    wh, lengths = token_hashes(texts, tokenize, hasher)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    total = len(wh)
    # full n-grams at every global position, then keep those that do not cross a document boundary
    if total >= n:
        acc = wh[: total - n + 1] * _POS_MULT[0]
        for j in range(1, n):
            acc = acc + wh[j : total - n + 1 + j] * _POS_MULT[j]
    else:
        acc = np.zeros(0, dtype=_U64)
    counts = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if len(acc):
        pos_doc = np.repeat(np.arange(len(texts)), lengths)[: len(acc)]
        valid = np.arange(len(acc)) + n <= starts[1:][pos_doc]
        full = acc[valid]
    else:
        full = acc
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short) == 0:
        return mix64(full), offsets
    out = np.empty(offsets[-1], dtype=_U64)
    out[np.repeat(lengths >= n, counts)] = full
    for i in short:
        seg = wh[starts[i] : starts[i + 1]]
        out[offsets[i]] = (seg * _POS_MULT[: len(seg)]).sum(dtype=_U64) + _U64(len(seg))
    return mix64(out), offsets


def partition_salts(values: Sequence[str | None]) -> np.ndarray:
    """One uint64 per row, mixed into the dedup keys of ``partition_by`` (e.g. ``lang``): rows of different
    partitions never share a key, so two pages in different languages never dedup each other; 0 for a null."""
    h = xxhash.xxh64_intdigest
    return np.fromiter(
        (h(v.encode("utf-8", "surrogatepass")) if v else 0 for v in values), dtype=_U64, count=len(values)
    )


def shingle_set(text: str, n: int = 5, tokenize: str = "words") -> np.ndarray:
    """Sorted distinct shingle hashes of one text (for exact Jaccard)."""
    h, _ = shingle_hashes([text], n, tokenize=tokenize)
    return np.unique(h)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted distinct hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def md5_text(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()
