"""Mixtures benchmark: Llama-3 token counting (tokens/s) and 13-gram decontamination (documents/s) on real samples.

Documents: the Gutenberg books and CommonCrawl text samples in ../shared/corpus, cut into ~2,000-character
documents (a typical web page).  Run: ``.venv/bin/python bench/bench_mixtures.py`` (``make bench`` runs it).
"""

from __future__ import annotations

import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, machine, md_table, peak_rss_mb, write_section  # noqa: E402
from mixtures.decontam import NGramIndex  # noqa: E402
from mixtures.spec import load_mixture  # noqa: E402
from mixtures.tokens import TokenCounter  # noqa: E402


def sample_docs(chunk: int = 2000) -> list[str]:
    files = sorted(glob.glob(os.path.join(CORPUS, "books", "*.txt")))
    files += sorted(
        p
        for p in glob.glob(os.path.join(CORPUS, "commoncrawl", "text", "**", "*"), recursive=True)
        if os.path.isfile(p) and not p.endswith(".md")
    )
    docs = []
    for p in files:
        text = open(p, encoding="utf-8", errors="replace").read()
        docs += [text[i : i + chunk] for i in range(0, len(text), chunk)]
    return docs


def bench_tokens(docs: list[str]) -> list[list[object]]:
    import quicktok

    rows = []
    enc = quicktok.get_encoding("llama3")
    chars = sum(len(d) for d in docs)
    for label, fn in [
        ("quicktok count_batch (all threads)", lambda: TokenCounter("llama3", threads=0).count(docs)),
        ("quicktok count_batch (1 thread)", lambda: TokenCounter("llama3", threads=1).count(docs)),
        ("quicktok encode per document", lambda: [len(enc.encode(d)) for d in docs]),
    ]:
        fn()  # warm-up: loads the vocabulary
        t0 = time.perf_counter()
        counts = fn()
        dt = time.perf_counter() - t0
        total = int(sum(counts))
        rows.append(
            [label, f"{len(docs):,}", f"{chars / 1e6:.1f} M", f"{total:,}", f"{dt:.2f}", f"{total / dt:,.0f}"]
        )
    return rows


def bench_decontam(docs: list[str]) -> list[list[object]]:
    spec = load_mixture("core").decontaminate
    t0 = time.perf_counter()
    index = NGramIndex.from_spec(spec)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    hits = sum(index.match(d) is not None for d in docs)
    dt = time.perf_counter() - t0
    return [
        [
            f"{len(index.entries):,}",
            f"{build:.2f}",
            f"{len(docs):,}",
            hits,
            f"{dt:.2f}",
            f"{len(docs) / dt:,.0f}",
            f"{sum(len(d) for d in docs) / dt / 1e6:.2f}",
        ]
    ]


def main() -> int:
    if not os.path.isdir(CORPUS):
        print(f"bench_mixtures: {CORPUS} not found; skipped")
        return 0
    docs = sample_docs()
    tok = bench_tokens(docs)
    dec = bench_decontam(docs)
    md = [
        f"## Mixtures: token counting and decontamination ({machine()})",
        "",
        f"{len(docs):,} documents of ~2,000 characters from ../shared/corpus books + commoncrawl/text.",
        "",
        md_table(["Llama-3 token count", "docs", "chars", "tokens", "s", "tokens/s"], tok),
        "",
        md_table(
            ["13-gram index (4 benchmarks)", "index build s", "docs", "contaminated", "s", "docs/s", "MB/s"],
            dec,
        ),
        "",
        f"peak RSS {peak_rss_mb()} MiB",
    ]
    write_section("mixtures", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
