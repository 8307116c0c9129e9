"""Throughput of the StackExchange and Wikipedia recipes over the real samples in ../shared/corpus (one process).

documents/s counts documents read (kept + rejected); MB/s counts the uncompressed bytes of the inputs the reader
discovered (Posts.xml per site; the dumps, decompressed).  Wikipedia runs with ``languages: null`` so that the
Latgalian dump is parsed too (the default LLaMA-1 list skips it whole, which would flatter the numbers).
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, SOURCE_HEADERS, machine, md_table, peak_rss_mb, source_row, write_section  # noqa: E402
from pipelines.readers.xmlstream import open_compressed  # noqa: E402
from pipelines.sources.registry import build_recipe, deep_merge, load_config  # noqa: E402

SOURCES = {"stackexchange": {}, "wikipedia": {"reader": {"languages": None}}}


def uncompressed_bytes(path: str) -> int:
    total = 0
    with open_compressed(path) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
    return total


def bench(source: str, overrides: dict) -> list[object]:
    folder = os.path.join(CORPUS, source)
    config = deep_merge(load_config(source), overrides)
    discovered = build_recipe(source, config).reader.discover(folder)
    return source_row(source, config, folder, sum(uncompressed_bytes(p) for p in discovered) / 1e6)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if not os.path.isdir(CORPUS):
        print(f"skipped: {CORPUS} not found")
        return
    rows = [bench(s, o) for s, o in SOURCES.items()]
    table = md_table([h if h != "MB in" else "MB in (uncompressed)" for h in SOURCE_HEADERS], rows)
    md = (
        f"## Sources B: StackExchange, Wikipedia\n\n{machine()}; `executor=local`; Wikipedia with all languages; "
        f"peak RSS {peak_rss_mb()} MiB.\n\n{table}\n"
    )
    write_section("sources_b", md)
    print(md)


if __name__ == "__main__":
    main()
