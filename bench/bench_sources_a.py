"""Throughput of the GitHub, books and arXiv recipes over the real samples in ../shared/corpus (one process, local).

documents/s counts documents read (kept + rejected); MB/s counts the bytes of the input files.  Corpus stages (exact
md5 dedup, book near-dup) are included, since they are part of a run.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, machine, md_table, peak_rss_mb, write_section  # noqa: E402
from pipelines.config import build_recipe, load_config  # noqa: E402
from pipelines.runner import run_recipe  # noqa: E402

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
    recipe = build_recipe(source, load_config(source))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = run_recipe(recipe, folder, out, executor="local", progress=False)
        dt = time.perf_counter() - t0
    mb = corpus_bytes(folder) / 1e6
    s = res.summary
    return [
        source,
        s["inputs"],
        s["read"],
        s["kept"],
        f"{mb:.2f}",
        f"{dt:.2f}",
        f"{s['read'] / dt:.1f}",
        f"{mb / dt:.2f}",
    ]


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if not os.path.isdir(CORPUS):
        print(f"skipped: {CORPUS} not found")
        return
    rows = [bench(s) for s in SOURCES]
    table = md_table(["source", "inputs", "docs read", "kept", "MB in", "seconds", "docs/s", "MB/s"], rows)
    md = (
        f"## Sources A: GitHub, books, arXiv\n\n{machine()}; `executor=local`, corpus stages included; "
        f"peak RSS {peak_rss_mb()} MiB.\n\n{table}\n"
    )
    write_section("sources_a", md)
    print(md)


if __name__ == "__main__":
    main()
