"""Throughput of the StackExchange and Wikipedia recipes over the real samples in ../shared/corpus (one process).

documents/s counts documents read (kept + rejected); MB/s counts the uncompressed bytes of the inputs the reader
discovered (Posts.xml per site; the dumps, decompressed).  Wikipedia runs with ``languages: null`` so that the
Latgalian dump is parsed too (the default LLaMA-1 list skips it whole, which would flatter the numbers).
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
from pipelines.readers.xmlstream import open_compressed  # noqa: E402
from pipelines.runner import run_recipe  # noqa: E402

SOURCES = {"stackexchange": {}, "wikipedia": {"reader": {"languages": None}}}


def uncompressed_bytes(path: str) -> int:
    total = 0
    with open_compressed(path) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
    return total


def bench(source: str, overrides: dict) -> list[object]:
    folder = os.path.join(CORPUS, source)
    config = load_config(source)
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    recipe = build_recipe(source, config)
    mb = sum(uncompressed_bytes(p) for p in recipe.reader.discover(folder)) / 1e6
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = run_recipe(recipe, folder, out, executor="local", progress=False)
        dt = time.perf_counter() - t0
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
    rows = [bench(s, o) for s, o in SOURCES.items()]
    table = md_table(
        ["source", "inputs", "docs read", "kept", "MB in (uncompressed)", "seconds", "docs/s", "MB/s"], rows
    )
    md = (
        f"## Sources B: StackExchange, Wikipedia\n\n{machine()}; `executor=local`; Wikipedia with all languages; "
        f"peak RSS {peak_rss_mb()} MiB.\n\n{table}\n"
    )
    write_section("sources_b", md)
    print(md)


if __name__ == "__main__":
    main()
