"""Throughput of the GitHub, books and arXiv recipes over the real samples in ../shared/corpus (one process, local).

documents/s counts documents read (kept + rejected); MB/s counts the bytes of the input files.  Corpus stages (exact
md5 dedup, book near-dup) are included, since they are part of a run.
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, SOURCE_HEADERS, machine, md_table, peak_rss_mb, source_row, write_section  # noqa: E402
from pipelines.sources.registry import load_config  # noqa: E402

SOURCES = ("github", "books", "arxiv")


def corpus_bytes(folder: str) -> int:
    return sum(
        os.path.getsize(os.path.join(d, n))
        for d, _, names in os.walk(folder)
        for n in names
        if n != "MANIFEST.md"
    )


def bench(source: str) -> list[object]:
    folder = os.path.join(CORPUS, source)
    return source_row(source, load_config(source), folder, corpus_bytes(folder) / 1e6)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if not os.path.isdir(CORPUS):
        print(f"skipped: {CORPUS} not found")
        return
    rows = [bench(s) for s in SOURCES]
    table = md_table(SOURCE_HEADERS, rows)
    md = (
        f"## Sources A: GitHub, books, arXiv\n\n{machine()}; `executor=local`, corpus stages included; "
        f"peak RSS {peak_rss_mb()} MiB.\n\n{table}\n"
    )
    write_section("sources_a", md)
    print(md)


if __name__ == "__main__":
    main()
