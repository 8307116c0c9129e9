"""Cost of language-aware MinHash shingles: signature documents/s for English, Chinese and Japanese pages with
``tokenize: words`` (whitespace words, the shingling before) and ``auto`` (characters of unspaced scripts), and the
cost of the alternative, a word tokenizer (jieba for Chinese, as datatrove's ``zh`` tokenizer), before hashing.

Pages are real sentences (Tatoeba, ../shared/corpus/langid: 500 each of eng, cmn, jpn), 40 per page, drawn with a
seeded generator.  Prints a table (best of ``repeats``); writes nothing to bench/results.md.  Run with
``python bench/bench_cjk_shingles.py [pages] [repeats]``.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import CORPUS, machine, md_table  # noqa: E402
from dedup.minhash import MinHashConfig, signatures  # noqa: E402
from dedup.text import shingle_hashes  # noqa: E402

log = logging.getLogger("bench_cjk_shingles")
LANGS = {"en": "eng", "zh": "cmn", "ja": "jpn"}


def pages(n: int, per_page: int = 40, seed: int = 0) -> dict[str, list[str]]:
    """``n`` pages per language of ``per_page`` real sentences each."""
    sentences: dict[str, list[str]] = {code: [] for code in LANGS.values()}
    with open(os.path.join(CORPUS, "langid", "tatoeba_laser_v1_part1.tsv"), encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["lang"] in sentences:
                sentences[row["lang"]].append(row["text"])
    rng = np.random.default_rng(seed)
    sep = {"en": " ", "zh": "", "ja": ""}
    return {
        lang: [sep[lang].join(rng.choice(sentences[code], per_page)) for _ in range(n)]
        for lang, code in LANGS.items()
    }


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def jieba_signatures(texts: list[str], cfg: MinHashConfig) -> None:
    """MinHash over jieba word 5-grams: the words joined by spaces, then the whitespace shingling."""
    import jieba

    signatures([" ".join(jieba.lcut(t)) for t in texts], cfg)


def main(n: int = 300, repeats: int = 3) -> None:
    logging.getLogger("jieba").setLevel(logging.WARNING)
    data = pages(n)
    words, auto = MinHashConfig(), MinHashConfig(tokenize="auto")
    rows = []
    for lang, texts in data.items():
        chars = sum(map(len, texts))
        runs = {
            "words (before)": lambda t=texts: signatures(t, words),
            "auto": lambda t=texts: signatures(t, auto),
        }
        if lang == "zh":
            import jieba

            jieba.initialize()
            runs["jieba words"] = lambda t=texts: jieba_signatures(t, words)
        for name, fn in runs.items():
            seconds = best(fn, repeats)
            tok = "auto" if name == "auto" else "words"
            shingles = len(shingle_hashes(texts, 5, tokenize=tok)[0]) if name != "jieba words" else "-"
            rows.append(
                [
                    lang,
                    name,
                    n,
                    round(chars / n),
                    shingles,
                    round(n / seconds),
                    round(chars / seconds / 1e6, 2),
                ]
            )
    print(
        f"MinHash signatures, {words.num_perm} permutations, best of {repeats}; {machine()} (shared machine)"
    )
    print(md_table(["lang", "tokenize", "pages", "chars/page", "shingles", "docs/s", "Mchars/s"], rows))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(*(int(a) for a in sys.argv[1:3]))
