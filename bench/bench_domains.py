"""Cost of the web classifiers (code/math domains, topics) per document against HTML extraction, and what the domain
router routes, on the real WARC samples (``../shared/corpus/commoncrawl/warc``) and the fixture WARCs.  Prints the
tables and writes them to bench/results.md (section ``classifiers``).

Usage: ``python bench/bench_domains.py`` (on a shared machine the absolute numbers move; the ratio is the point:
both steps run in the same process, one after the other, on the same documents).
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, machine, md_table, write_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = logging.getLogger("bench_domains")


def _pages(files: list[str]):
    """The HTML rows of the WARC files as one Arrow table (text = HTML, content_format)."""
    import pyarrow as pa

    from pipelines.readers.warc import WarcReader

    reader = WarcReader()
    rows = [r for f in files for r in reader.read(f) if isinstance(r, dict) and not r.get("reason")]
    return pa.table(
        {"text": [r.get("text") or "" for r in rows], "content_format": [r["content_format"] for r in rows]}
    )


def _best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cost(name: str, files: list[str]) -> tuple[list[object], collections.Counter]:
    from classifiers.domains import DomainScore
    from classifiers.steps import TopicScore
    from filters.extract import ExtractText

    table = _pages(files)
    extract = ExtractText(timeout_s=60.0)
    t_extract, result = _best_of(lambda: extract(table), repeat=1)
    kept = result.table.filter([r is None for r in result.reasons or [None] * table.num_rows])
    score = DomainScore()
    score(kept.slice(0, 1))  # load the model outside the timing
    t_score, scored = _best_of(lambda: score(kept))
    topic = TopicScore()
    topic(kept.slice(0, 1))
    t_topic, _ = _best_of(lambda: topic(kept))
    domains = collections.Counter(scored.table.column("domain").to_pylist())
    n = table.num_rows
    row = [
        name,
        n,
        kept.num_rows,
        f"{1000 * t_extract / max(1, n):.2f}",
        f"{1000 * t_score / max(1, kept.num_rows):.3f}",
        f"{100 * t_score / max(t_extract, 1e-9):.1f}%",
        f"{1000 * t_topic / max(1, kept.num_rows):.3f}",
        f"{100 * t_topic / max(t_extract, 1e-9):.1f}%",
        ", ".join(f"{k} {v}" for k, v in sorted(domains.items())),
    ]
    return row, domains


def routed_outcomes(folder: str) -> list[list[object]]:
    """The CommonCrawl recipe (model filters off) with the routing off and on: what became of each code/math page."""
    import pyarrow.parquet as pq

    from pipelines.runner import run_recipe
    from pipelines.sources.commoncrawl import without_models
    from pipelines.sources.registry import build_recipe, deep_merge, load_config

    outcome = {}
    for routing in (False, True):
        config = deep_merge(load_config("commoncrawl"), without_models())
        config = deep_merge(
            config, {"steps": {"domains": {"enabled": routing}, "domain_rules": {"enabled": routing}}}
        )
        with tempfile.TemporaryDirectory() as out:
            run_recipe(build_recipe("commoncrawl", config), folder, out, executor="local", progress=False)
            docs = pq.read_table(os.path.join(out, "commoncrawl", "docs")).to_pylist()
            rej = pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()
        outcome[routing] = {d["id"]: ("kept", d.get("domain"), d.get("url")) for d in docs} | {
            r["id"]: (r["reason"], r.get("domain"), r.get("url")) for r in rej
        }
    rows = []
    for doc, (after, domain, url) in sorted(outcome[True].items()):
        if domain in ("code", "math"):
            rows.append([url or doc, domain, outcome[False].get(doc, ("?",))[0], after])
    return rows


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    real = sorted(
        f
        for f in glob.glob(os.path.join(CORPUS, "commoncrawl", "warc", "**", "*.warc.gz"), recursive=True)
        if not f.endswith((".wat.gz", ".wet.gz"))
    )
    fixtures = sorted(glob.glob(os.path.join(REPO, "tests", "fixtures", "commoncrawl", "*.warc*")))
    rows = []
    if fixtures:
        rows.append(cost("fixture WARCs", fixtures)[0])
    if real:
        rows.append(cost(f"real WARC samples ({len(real)} files)", real)[0])
    headers = [
        "input",
        "pages",
        "extracted",
        "extract ms/page",
        "domains ms/page",
        "domains / extract",
        "topics ms/page",
        "topics / extract",
        "domains",
    ]
    text = (
        f"## Web classifiers vs extraction\n\n{machine()}, shared machine; extraction once, each classifier best of 3 "
        "on the extracted pages, in one process (the wikiref/KenLM/RoBERTa costs are under Quality models).\n\n"
        + md_table(headers, rows)
    )
    if real:
        text += (
            "\n\nReal WARC pages routed to code or math: outcome with the routing off -> on\n\n"
            + md_table(
                ["page", "domain", "routing off", "routing on"],
                routed_outcomes(os.path.join(CORPUS, "commoncrawl", "warc")),
            )
        )
    print(text)
    write_section("classifiers", text)


if __name__ == "__main__":
    main()
