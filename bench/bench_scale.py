"""Scale: the CommonCrawl pipeline on 1x, 2x, 4x and 8x a generated corpus (time should grow linearly, memory stay
flat), and the speed-up from 1 to 2 Ray workers on the same input.

The corpus is bench_commoncrawl's generator (real pages from ../shared/corpus written into WARC files, each record
with its own id), with ``SCALE_PAGES`` pages per file so that the whole run stays around ten minutes on two cores.
Every run is a fresh process (``ray.init`` embedded with ``num_cpus`` workers) measured from outside: wall time and
the peak RSS of the whole process tree (driver, raylet, workers).  Writes the "scale" section of bench/results.md.
"""

from __future__ import annotations

import os
import shutil
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench.bench_commoncrawl as cc  # noqa: E402
from bench.common import WORK, machine, md_table, write_section  # noqa: E402
from pipelines.sources.commoncrawl import without_models  # noqa: E402

PAGES = int(os.environ.get("SCALE_PAGES", "48"))
FILES_1X = int(os.environ.get("SCALE_FILES", "4"))
FACTORS = [int(x) for x in os.environ.get("SCALE_FACTORS", "1,2,4,8").split(",")]
OUT = os.path.join(WORK, "scale")
# the quality-model steps are left out: their models are trained per machine (make models), and the wiki-reference
# fastText model alone is 0.5 GB per worker, which would measure the model rather than the pipeline's scaling
CONFIG = yaml.safe_dump(without_models(), sort_keys=False)


def corpus(n_files: int) -> tuple[str, int]:
    """``n_files`` generated WARCs of ``PAGES`` real pages each (cached under bench/generated/scale/)."""
    every = cc.real_pages()
    pages = every[:: max(1, len(every) // PAGES)][:PAGES]  # spread over the set: small and large pages alike
    cc.real_pages = lambda: pages  # generate() writes every page it is given into every file
    cc.OUT = os.path.join(OUT, f"{n_files}-files-{PAGES}-pages")
    return cc.generate(n_files)


def run_once(folder: str, n_cpus: int) -> tuple[float, float, float, int]:
    """One pipeline run in a fresh process: (wall seconds, run_recipe seconds, peak RSS MiB, documents read)."""
    import json

    out = os.path.join(OUT, "out")
    shutil.rmtree(out, ignore_errors=True)
    cfg = os.path.join(OUT, "config.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(CONFIG)
    secs, rss, _ = cc.measure(
        [sys.executable, __file__, "--run", folder, out, cfg, str(n_cpus)], env={"RAY_DEDUP_LOGS": "0"}
    )
    with open(os.path.join(out, "commoncrawl", "summary.json"), encoding="utf-8") as f:
        read = json.load(f)["read"]
    with open(os.path.join(out, "timing.json"), encoding="utf-8") as f:
        run_s = json.load(f)["run_s"]
    return secs, run_s, rss, read


def _driver(folder: str, out: str, cfg: str, n_cpus: int) -> None:
    import json
    import time

    from pipelines.core.executor import init_ray
    from pipelines.runner import run_recipe
    from pipelines.sources.registry import build_recipe, load_config

    init_ray(num_cpus=n_cpus)
    t0 = time.perf_counter()  # after Ray's start-up; worker start-up (imports, model load) stays inside
    run_recipe(build_recipe("commoncrawl", load_config("commoncrawl", cfg)), folder, out, progress=False)
    with open(os.path.join(out, "timing.json"), "w", encoding="utf-8") as f:
        json.dump({"run_s": time.perf_counter() - t0}, f)


def main() -> None:
    rows = []
    base = None
    for factor in FACTORS:
        folder, n_docs = corpus(FILES_1X * factor)
        secs, run_s, rss, read = run_once(folder, 2)
        assert read == n_docs, (read, n_docs)
        base = base or run_s / factor
        rows.append(
            [
                f"{factor}x",
                FILES_1X * factor,
                f"{n_docs:,}",
                f"{secs:.1f}",
                f"{run_s:.1f}",
                f"{n_docs / run_s:.1f}",
                f"{run_s / (base * factor):.2f}",
                f"{rss:.0f}",
            ]
        )
        print(rows[-1], flush=True)
    import numpy as np

    docs = [int(r[2].replace(",", "")) for r in rows]
    runs = [float(r[4]) for r in rows]
    slope, start = np.polyfit(docs, runs, 1)
    pred = np.polyval([slope, start], docs)
    r2 = 1 - float(np.sum((np.array(runs) - pred) ** 2) / np.sum((np.array(runs) - np.mean(runs)) ** 2))
    factor = FACTORS[-1]
    folder, n_docs = corpus(FILES_1X * factor)
    _, one, rss1, _ = run_once(folder, 1)
    _, two, rss2, _ = run_once(folder, 2)
    speedup = one / two
    text = (
        f"## Scale: CommonCrawl at 1x-8x, 1 vs 2 Ray workers\n\n{machine()}. Generated WARCs of {PAGES} real pages "
        f"each (bench_commoncrawl's generator); 1x = {FILES_1X} files. Quality-model steps off, everything else as "
        "the default config (extraction, line dedup, LID, heuristics, MinHash). Each run is a fresh process with "
        "embedded Ray and 2 workers. *wall s* includes Python and Ray start-up; *run s* is `run_recipe` alone (the "
        "workers' imports and model loading stay inside it); peak RSS is the whole process tree (driver, GCS, raylet, "
        "workers), sampled every 0.1 s.\n\n"
        + md_table(
            [
                "size",
                "files",
                "documents",
                "wall s",
                "run s",
                "docs/s (run)",
                "run s / (1x run s x size)",
                "peak RSS MiB",
            ],
            rows,
        )
        + f"\n\nLinear fit of run s over documents: **{start:.1f} s + {slope * 1000:.0f} ms x documents** "
        f"(R^2 = {r2:.3f}); the constant is the workers' start-up (imports, LID model), paid once per worker, "
        "so on small inputs time per document falls with size and on large ones it is flat."
        + f"\n\n1 vs 2 Ray workers on {factor}x ({n_docs:,} documents), run s: {one:.1f} vs {two:.1f}, speed-up "
        f"**{speedup:.2f}x** (target >= 1.8x; peak RSS {rss1:.0f} vs {rss2:.0f} MiB). Both runs come after the size series, on the "
        "same files; with 2 cores, anything else running during them takes from the second worker first.\n"
    )
    write_section("scale", text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        _driver(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
