"""Run by test_trafilatura_speedups in a fresh interpreter: extract every page with trafilatura as shipped, then with
filters.patches.trafilatura_speedups installed, under two settings each, and print a JSON verdict (install() cannot be undone
in-process).  ``differ`` indexes pages, then pages again for the second setting; the CPU times are the first setting's."""

from __future__ import annotations

import json
import logging
import pickle
import sys
import time

from trafilatura import extract

#: the bench's settings, then trafilatura's defaults with comments (which use the comment XPaths as well)
SETTINGS = ({"favor_precision": True, "include_comments": False}, {"include_comments": True})


def run(pages: list[str]) -> tuple[list[str | None], float]:
    t0 = time.process_time()
    out = [extract(h, deduplicate=False, **SETTINGS[0]) for h in pages]
    t = time.process_time() - t0
    out += [extract(h, deduplicate=False, **SETTINGS[1]) for h in pages]
    return out, t


def main() -> None:
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    pages = pickle.load(open(sys.argv[1], "rb"))
    before, t_before = run(pages)
    from filters.patches import trafilatura_speedups

    installed = trafilatura_speedups.install()
    after, t_after = run(pages)
    differ = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    print(
        json.dumps(
            {
                "pages": len(pages),
                "installed": installed,
                "extracted": sum(x is not None for x in before[: len(pages)]),
                "differ": differ,
                "cpu_before": round(t_before, 2),
                "cpu_after": round(t_after, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
