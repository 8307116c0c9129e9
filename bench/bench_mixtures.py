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

import numpy as np  # noqa: E402

from bench.common import CORPUS, machine, md_table, peak_rss_mb, write_section  # noqa: E402
from mixtures.benchmarks import load_index  # noqa: E402
from mixtures.decontam import NGramIndex, decontaminate_file, window_hashes  # noqa: E402
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


class PerDocumentLoop:
    """The decontamination of commit 3c4b165, kept here as the "before": one document at a time (datatrove's
    simplify_text, word hashes, 13 numpy passes over that document's words, searchsorted, each hit's words joined
    for the comparison with the stored n-gram text; the comparison itself is left out, as no text is shipped now and
    hits are rare)."""

    def __init__(self, index: NGramIndex):
        from datatrove.utils.text import simplify_text

        from dedup.text import WordHasher

        self.simplify, self.hash, self.index = simplify_text, WordHasher().hash_words, index

    def match(self, text: str) -> bool:
        words = [w for w in self.simplify(text or "").split(" ") if w]
        wh = window_hashes(self.hash(words), self.index.n)
        if not len(wh):
            return False
        keys = self.index.keys
        pos = np.searchsorted(keys, wh)
        pos[pos >= len(keys)] = 0
        hits = np.flatnonzero(keys[pos] == wh)
        return any(" ".join(words[k : k + self.index.n]) for k in hits.tolist())


def bench_decontam(docs: list[str], repeats: int = 5) -> list[list[object]]:
    """docs/s of the per-document loop vs the batch path (match_batch, and decontaminate_file on a Parquet file,
    read + write included), best of ``repeats`` interleaved rounds, one process (= one core)."""
    import shutil
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    index = load_index(load_mixture("core").decontaminate)  # the shipped hash sets
    load_s = time.perf_counter() - t0
    old = PerDocumentLoop(index)
    tmp = tempfile.mkdtemp(prefix="bench-decontam-")
    docs_file = os.path.join(tmp, "docs", "bench.parquet")
    os.makedirs(os.path.dirname(docs_file))
    ids = [f"d{i}" for i in range(len(docs))]
    pq.write_table(pa.table({"id": ids, "text": docs}), docs_file)

    def per_file() -> int:
        os.utime(docs_file)  # a new mtime: the sidecar is recomputed, not reused
        path, _ = decontaminate_file(docs_file, index)
        return pq.read_metadata(path).num_rows

    def old_on_file() -> int:
        texts = pq.read_table(docs_file, columns=["id", "text"]).column("text").to_pylist()
        return sum(old.match(d) for d in texts)

    # (label, function, the row it is compared with): in-memory with in-memory, file with file
    runs = [
        (
            "per-document loop (before, 3c4b165), documents in memory",
            lambda: sum(old.match(d) for d in docs),
            0,
        ),
        (
            "match_batch, 4,096 docs per batch, documents in memory",
            lambda: sum(m is not None for m in _batched(index, docs)),
            0,
        ),
        ("per-document loop (before), reading the docs file", old_on_file, 2),
        ("decontaminate_file: docs file in, sidecar Parquet out", per_file, 2),
    ]
    for _, fn, _ in runs:
        fn()  # warm-up: word-hash cache, imports
    # rounds interleave the three, so a busy moment of the (shared) machine hits all of them alike
    best, hits = {label: float("inf") for label, _, _ in runs}, {}
    for _ in range(repeats):
        for label, fn, _ in runs:
            t0 = time.perf_counter()
            hits[label] = fn()
            best[label] = min(best[label], time.perf_counter() - t0)
    rows = []
    for label, _, ref in runs:
        rate, base = len(docs) / best[label], len(docs) / best[runs[ref][0]]
        rows.append(
            [
                label,
                f"{len(docs):,}",
                hits[label],
                f"{best[label]:.2f}",
                f"{rate:,.0f}",
                f"{rate / base:.1f}x",
            ]
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return [[f"{len(index):,}", f"{load_s:.2f}"]], rows


def _batched(index: NGramIndex, docs: list[str], size: int = 4096) -> list:
    out = []
    for i in range(0, len(docs), size):
        out += index.match_batch(docs[i : i + size])
    return out


def main() -> int:
    if not os.path.isdir(CORPUS):
        print(f"bench_mixtures: {CORPUS} not found; skipped")
        return 0
    docs = sample_docs()
    tok = bench_tokens(docs)
    index_row, dec = bench_decontam(docs)
    md = [
        f"## Mixtures: token counting and decontamination ({machine()})",
        "",
        f"{len(docs):,} documents of ~2,000 characters from ../shared/corpus books + commoncrawl/text.",
        "",
        md_table(["Llama-3 token count", "docs", "chars", "tokens", "s", "tokens/s"], tok),
        "",
        md_table(["13-gram hashes (4 shipped benchmarks)", "load s"], index_row),
        "",
        f"Decontamination, one process (one core), best of 5 interleaved rounds, same documents; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when it finished (a machine shared with other jobs):",
        "",
        md_table(["decontamination", "docs", "contaminated", "s", "docs/s", "vs before"], dec),
        "",
        f"peak RSS {peak_rss_mb()} MiB",
    ]
    write_section("mixtures", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
