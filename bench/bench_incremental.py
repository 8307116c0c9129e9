"""Incremental MinHash (cron): the second run's cost for new inputs B (10% of A) against a full rerun over A+B.

A source's docs folder gets A (real paragraphs, 20% planted near-duplicates, 5,000 documents per file) and a first
MinHash stage run (full: it builds the index); then B's files are added and the stage runs again, once
incremental (index of A's survivors) and once, on a copy, as today's full rerun over every docs file.  Side by side
in one process, same executor; prints seconds, docs/s of new data, and whether both removed the same B documents
(they need not: the full rerun may also drop an A survivor for a better B copy; the incremental rule keeps A).

    python bench/bench_incremental.py [--a 50000] [--b 5000] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, WORK, machine  # noqa: E402

log = logging.getLogger("bench.incremental")


def _write(folder: str, docs: dict[str, list], lo: int, hi: int, prefix: str, per: int = 5000) -> None:
    from dedup.corpus import write_parquet_atomic
    from pipelines.core.schema import CORE_SCHEMA, table_from_rows

    for i, start in enumerate(range(lo, hi, per)):
        rows = [
            {"id": docs["id"][j], "source": "cc", "text": docs["text"][j]}
            for j in range(start, min(hi, start + per))
        ]
        write_parquet_atomic(
            table_from_rows(rows, CORE_SCHEMA), os.path.join(folder, f"{prefix}{i:04d}.parquet")
        )


def _ids(folder: str, prefix: str) -> set[str]:
    import pyarrow.parquet as pq

    names = sorted(n for n in os.listdir(folder) if n.startswith(prefix))
    return {
        i
        for n in names
        for i in pq.read_table(os.path.join(folder, n), columns=["id"]).column("id").to_pylist()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", type=int, default=50_000)
    ap.add_argument("--b", type=int, default=5_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import numpy as np

    from dedup.evalset import make_documents, real_paragraphs
    from dedup.stages import MinHashDedupStage
    from pipelines.core.corpus_stage import run_stage

    n = args.a + args.b
    docs = make_documents(real_paragraphs(CORPUS), n, dup_frac=0.2, seed=42)
    order = np.random.default_rng(7).permutation(n).tolist()  # planted pairs within A, within B and across
    docs = {k: [v[i] for i in order] for k, v in docs.items()}
    root = os.path.join(WORK, "incremental", f"{args.a}-{args.b}")
    shutil.rmtree(root, ignore_errors=True)
    inc, full = os.path.join(root, "inc"), os.path.join(root, "full")
    _write(os.path.join(inc, "docs"), docs, 0, args.a, "a")
    settings = {"executor": "process", "workers": args.workers}
    t0 = time.perf_counter()
    first = run_stage(MinHashDedupStage(settings=settings), inc)
    t_first = time.perf_counter() - t0
    shutil.copytree(inc, full)
    for folder in (inc, full):
        _write(os.path.join(folder, "docs"), docs, args.a, n, "b")
    t0 = time.perf_counter()
    second = run_stage(MinHashDedupStage(settings=settings), inc)
    t_inc = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = run_stage(MinHashDedupStage(settings=settings, incremental=False), full)
    t_full = time.perf_counter() - t0
    kept_inc, kept_full = _ids(os.path.join(inc, "docs"), "b"), _ids(os.path.join(full, "docs"), "b")
    print(f"# incremental MinHash, A={args.a} docs then B={args.b} ({machine()}, {args.workers} workers)")
    print("| run | docs worked on | seconds | new docs/s | removed |")
    print("|---|---|---|---|---|")
    print(f"| first (A, full, builds the index) | {args.a} | {t_first:.1f} | - | {first['removed']} |")
    print(
        f"| second, incremental (B vs index) | {second['docs']} | {t_inc:.1f} | {args.b / t_inc:.0f} | {second['removed']} |"
    )
    print(
        f"| second, full rerun (A+B) | {again['docs']} | {t_full:.1f} | {args.b / t_full:.0f} | {again['removed']} |"
    )
    print(
        f"\nspeed-up {t_full / t_inc:.1f}x; index rows matched {second['index_rows_matched']}, "
        f"A candidates read {second['old_candidates']}; B survivors: {len(kept_inc)} incremental, "
        f"{len(kept_full)} full rerun, {len(kept_inc ^ kept_full)} differ"
    )


if __name__ == "__main__":
    main()
