"""Cost of per-language routing: the CommonCrawl recipe on the real WARCs of ../shared/corpus with
``lang_filter.languages: [en]`` (LLaMA-1) and ``[all]`` (every language routed to its own tokenizer and settings).

Model steps and corpus stages off (the heuristics are what routing changes).  Prints, per run: documents read, wall
seconds, documents/s, and the summed seconds and documents seen by the four word-level rules (from the stats files),
so the per-document cost of the rules can be compared; writes nothing to bench/results.md.  Run with
``python bench/bench_multilingual.py [repeats]``.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import CORPUS, machine  # noqa: E402
from pipelines.runner import run_recipe  # noqa: E402
from pipelines.sources.commoncrawl import without_models  # noqa: E402
from pipelines.sources.registry import build_recipe, deep_merge, load_config  # noqa: E402

log = logging.getLogger("bench_multilingual")
RULES = ("gopher_rep", "gopher", "c4", "fineweb")


def run_once(languages: list[str], out: str) -> dict[str, float]:
    """One local run over the real WARCs; wall time and the word-level rules' seconds and documents."""
    override = deep_merge(
        without_models(),
        {
            "steps": {"lang_filter": {"languages": languages}},
            "corpus_stages": {stage: {"enabled": False} for stage in ("minhash", "line_dedup", "url_dedup")},
        },
    )
    recipe = build_recipe("commoncrawl", deep_merge(load_config("commoncrawl"), override))
    t0 = time.perf_counter()
    run_recipe(recipe, os.path.join(CORPUS, "commoncrawl", "warc"), out, executor="local", progress=False)
    wall = time.perf_counter() - t0
    read = rule_s = rule_docs = 0.0
    for path in glob.glob(os.path.join(out, "commoncrawl", "stats", "*.json")):
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
        read += stats["read"]
        for step in stats["steps"]:
            if step["name"] in RULES:
                rule_s += step["seconds"]
                rule_docs += step["seen"] if step["name"] == "gopher_rep" else 0
    return {"read": read, "wall": wall, "rule_s": rule_s, "rule_docs": rule_docs}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    log.info("machine: %s (shared machine: other jobs may run)", machine())
    for i in range(repeats):
        for languages in (["en"], ["all"]):
            out = tempfile.mkdtemp(prefix="bench-ml-")
            try:
                r = run_once(languages, out)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            log.info(
                "run %d languages=%s: %d docs in %.1f s = %.2f docs/s; word rules %.2f s over %d docs "
                "(%.1f ms/doc)",
                i + 1,
                languages,
                r["read"],
                r["wall"],
                r["read"] / r["wall"],
                r["rule_s"],
                r["rule_docs"],
                1000 * r["rule_s"] / max(1, r["rule_docs"]),
            )


if __name__ == "__main__":
    main()
