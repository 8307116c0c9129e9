"""The batch paths of MinHash dedup agree with the one-document definitions they replace.

* Arrow tokenization (``dedup.arrow_text``) gives exactly ``tokens_of``'s tokens and xxh64 hashes, on real text in
  many languages and scripts, on markup and code, and on the characters where utf8proc and Python differ.
* ``signatures`` (one permutation at a time over chunks) equals ``min((a * h + b) >> 32)`` per document.
* ``pair_jaccard`` (one sort per chunk of pairs) equals ``jaccard`` of the two shingle sets, float for float.
"""

from __future__ import annotations

import bz2
import functools
import glob
import json
import os
import sys
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from dedup import arrow_text
from dedup.cluster import pair_jaccard
from dedup.minhash import MinHashConfig, permutations, signatures
from dedup.text import jaccard, shingle_hashes, shingle_set, strip_diacritics, token_hashes, tokens_of
from tests.helpers.paths import corpus_path

EDGE_CASES = [
    "İstanbul'da İSTANBUL ve Iğdır; DİYARBAKIR",  # Turkish dotted capital I: str.lower gives i + U+0307
    "ΟΔΟΣ ΟΔΟΣ. Η ΣΟΦΙΑ Σ",  # capital sigma: final ς by context in Python, σ in utf8proc
    "οδος σοφια ς",  # Greek already lower: no routing needed
    "e\u0301te\u0301 cafe\u0301 Café naïve Ångström ﬁancé",  # combining marks, precomposed, a ligature
    "東京タワーが見える 東京塔 tokyo tower 2024年",  # CJK: character tokens with tokenize='auto'
    "ภาษาไทย ไม่มีช่องว่าง ລາວ ខ្មែរ မြန်မာ",  # Thai, Lao, Khmer, Burmese (marks inside)
    "١٢٣٫٤٥ و ٣ — 12,5 and 3.14.15 ۱۲۳ १२३ ๑๒๓",  # digits of other scripts, decimal separators
    "a\u00a0b\u3000c\u2003d\u2028e\u205ff\u1680g\u0085h",  # Unicode whitespace
    "tab\tnew\nline\x00nul\x1fus\x7fdel\x9fapc",  # control characters (datatrove's table)
    "👍🏽 ok 🇩🇪 flags ✓ ½ ² ℃ Ⅻ",  # emoji, modifiers, number forms (not Nd)
    "한국어 텍스트 ᄒᆞᆫ글 Straße STRASSE ǅemal ǈ",  # Hangul (jamo), ß, title-case digraphs
    "new \U000e0080 \U0003fffe \U00031350 scripts",  # code points unicodedata 14 does not know
    "kept \u302e marks \u1d165 \U0001d165\U0001d16d",  # combining characters that are not Mn
    "   leading and trailing   ",
    "",
    "word",
    "!!! ... ???",
]


def _reference(texts: list[str | None], tokenize: str) -> tuple[np.ndarray, np.ndarray]:
    """tokens_of per text, each token's xxh64 (the definition)."""
    tokens = [tokens_of(t, tokenize) if t else [] for t in texts]
    flat = [xxhash.xxh64_intdigest(w.encode("utf-8", "surrogatepass")) for ts in tokens for w in ts]
    return np.array(flat, dtype=np.uint64), np.array([len(ts) for ts in tokens], dtype=np.int64)


def _assert_same(texts: list[str | None], tokenize: str, arrow: bool = True) -> None:
    want_h, want_n = _reference(texts, tokenize)
    got_h, got_n = token_hashes(pa.array(texts, pa.string()) if arrow else texts, tokenize)
    assert got_n.tolist() == want_n.tolist()
    assert np.array_equal(got_h, want_h)


@functools.lru_cache(maxsize=1)
def _real_texts() -> dict[str, list[str]]:
    """Real text of several kinds from ../shared/corpus: sentences in 114 languages, wiki markup, web pages, code,
    a book."""
    tsv = corpus_path("langid", "tatoeba_laser_v1_part1.tsv")
    with open(tsv, encoding="utf-8") as f:
        sentences = [line.split("\t", 1)[1].rstrip("\n") for line in f.readlines()[1::4]]  # every language
    with open(corpus_path("wikipedia", "smallwiki-latest-pages-articles.xml"), encoding="utf-8") as f:
        wiki = f.read().split("<page>")
    with bz2.open(corpus_path("wikipedia", "enwiki-table-markup.xml.bz2"), "rt", encoding="utf-8") as f:
        wiki += f.read().split("<page>")
    web = []
    for path in sorted(glob.glob(os.path.join(corpus_path("commoncrawl", "text"), "*", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            web += [json.loads(line)["text"] for line in f]
    code = []
    for path in sorted(glob.glob(os.path.join(corpus_path("github"), "*", "**", "*.*"), recursive=True))[
        :300
    ]:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        if not any(0xDC80 <= ord(c) <= 0xDCFF for c in text[:2000]):  # undecodable bytes: not text
            code.append(text)
    with open(corpus_path("books", "gutenberg-972.txt"), encoding="utf-8", errors="replace") as f:
        book = f.read()
    return {
        "sentences": sentences,
        "wiki": wiki,
        "web": web,
        "code": code,
        "book": [book[i : i + 20_000] for i in range(0, len(book), 20_000)],
    }


@pytest.mark.parametrize("tokenize", ["words", "auto"])
def test_arrow_tokens_equal_tokens_of_on_real_text(tokenize):
    for kind, texts in _real_texts().items():
        arr = pa.array(texts, pa.string())
        routed = arrow_text.needs_python(arr)
        assert routed.mean() < 0.02, kind  # the Arrow path does the work
        want_h, want_n = _reference(texts, tokenize)
        got_h, got_n = token_hashes(arr, tokenize)
        assert got_n.tolist() == want_n.tolist(), kind
        assert np.array_equal(got_h, want_h), kind
        # the Arrow path alone, on the texts it is given
        fast = [t for t, r in zip(texts, routed, strict=True) if not r]
        want_h, want_n = _reference(fast, tokenize)
        got_h, got_n = arrow_text.word_hashes(pa.array(fast, pa.string()), tokenize)
        assert got_n.tolist() == want_n.tolist() and np.array_equal(got_h, want_h), kind


@pytest.mark.parametrize("tokenize", ["words", "auto"])
def test_arrow_tokens_on_edge_cases(tokenize):
    _assert_same(EDGE_CASES + [None], tokenize)
    for text in EDGE_CASES:
        _assert_same([text], tokenize)
    # lone surrogates cannot be Arrow strings: a list holding one takes the Python path, the same result
    _assert_same(["lone \ud800 surrogate and \udcff more words here", "plain words"], tokenize, arrow=False)


def test_routing_covers_the_characters_where_kernels_differ():
    routed = arrow_text.needs_python(pa.array(EDGE_CASES, pa.string())).tolist()
    assert routed[:2] == [True, True]  # İ, Σ
    assert routed[2:4] == [False, False]  # lower Greek, combining marks: the Arrow path
    assert routed[EDGE_CASES.index("new \U000e0080 \U0003fffe \U00031350 scripts")]
    assert not routed[EDGE_CASES.index("")]
    # the kernels really differ there: İ lowers to i + U+0307 in Python (full case mapping), to i in utf8proc;
    # a word ending in Σ gets the final ς in Python only, so its hash differs
    import pyarrow.compute as pc

    assert pc.utf8_lower(pa.array(["İ"])).to_pylist() != ["İ".lower()]
    assert arrow_text.word_hashes(pa.array(["ΟΔΟΣ"]))[0].tolist() != _reference(["ΟΔΟΣ"], "words")[0].tolist()


def test_shipped_classes_are_those_computed_now():
    # the shipped file when its versions match, else computed: either way what this interpreter computes
    assert arrow_text.patterns() == arrow_text.compute_patterns()


def test_strip_diacritics_equals_the_translate_table():
    table = {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Mn"}
    every = "".join(chr(c) for c in range(0x80, 0x32000) if not 0xD800 <= c <= 0xDFFF)
    assert strip_diacritics(every) == unicodedata.normalize("NFD", every).translate(table)
    assert strip_diacritics("Ångström naïve") == "Angstrom naive"


def test_signatures_equal_the_per_document_minimum():
    cfg = MinHashConfig(executor="local", workers=1)
    texts = _real_texts()["web"][:40] + ["", "one", "two words", *EDGE_CASES]
    a, b = permutations(cfg.num_perm, cfg.seed)
    h, off = shingle_hashes(texts, cfg.ngram)
    for chunk in (7, 1000, 32_768):  # documents cut by chunk boundaries, and not
        sig, ok = signatures(texts, cfg, chunk=chunk)
        assert ok.tolist() == [off[i + 1] > off[i] for i in range(len(texts))]
        for i in range(len(texts)):
            s = h[off[i] : off[i + 1]]
            if len(s):
                want = ((s[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).min(axis=0)
                assert np.array_equal(sig[i], want.astype(np.uint32)), (chunk, i)
            else:
                assert (sig[i] == np.iinfo(np.uint32).max).all()


def test_pair_jaccard_equals_jaccard_of_sets():
    texts = _real_texts()["sentences"][:300:3] + _real_texts()["web"][:20]
    texts += [
        texts[-1] + " one more line",
        "",
        "",
        "same same same same same same same",
    ]  # near copy, empties
    h, off = shingle_hashes(texts, 5)
    rng = np.random.default_rng(3)
    doc_a = rng.integers(0, len(texts), 200)
    doc_b = rng.integers(0, len(texts), 200)
    doc_a[:3], doc_b[:3] = (
        [len(texts) - 4, len(texts) - 3, len(texts) - 1],
        [len(texts) - 5, len(texts) - 2, 0],
    )
    for max_items in (50, 4_000_000):  # many chunks, one chunk
        got = pair_jaccard(doc_a, doc_b, off, h, max_items=max_items)
        want = [
            jaccard(shingle_set(texts[x]), shingle_set(texts[y])) for x, y in zip(doc_a, doc_b, strict=True)
        ]
        assert got.tolist() == want
    assert got[1] == 1.0 and 0.8 < got[0] < 1.0
