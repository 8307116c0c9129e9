"""Dedup at growing corpus sizes: is the driver's memory flat, and are the intermediate files fixed by settings?

For each size, Winnow's MinHash workflow runs in a fresh subprocess (the driver) with a process-pool executor of 2
workers over the planted-duplicate inputs of ``bench_dedup`` (real paragraphs, 20% planted copies).  Reported:
driver peak RSS (the driver process alone), largest worker peak RSS (RUSAGE_CHILDREN), the number of files the
work folder held at its peak (sampled twice a second) and after the run, docs/s end to end, and recall on planted pairs at J >= 0.85.

    python bench/bench_dedup_scale.py [--note TEXT] [SIZE ...]      (default 50000 200000; make scale: DEDUP_SIZES)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import WORK, machine, md_table, write_section  # noqa: E402

HEADERS = [
    "docs",
    "driver peak RSS MiB",
    "largest worker peak RSS MiB",
    "work files (peak / left)",
    "wall s",
    "docs/s",
    "CPU s (driver + workers)",
    "docs per CPU s",
    "recall (planted J>=0.85)",
    "removed",
]


def child(n: int, out: str) -> None:
    """One measured run (in its own process so its peak RSS is the driver's alone)."""
    import resource
    import shutil
    import threading
    import time

    import pyarrow.parquet as pq

    from bench.bench_dedup import make_input, planted_truth
    from dedup.minhash import MinHashConfig
    from dedup.workflow import find_near_duplicates

    folder = make_input(n)  # made by a previous process (``prepare``): here only its path
    truth = planted_truth(folder, n)
    shutil.rmtree(out, ignore_errors=True)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = {"files": 0}
    running = threading.Event()
    running.set()

    def count_files() -> None:  # the work folder's file count, sampled while the passes run
        while running.is_set():
            peak["files"] = max(peak["files"], sum(len(n) for _, _, n in os.walk(out)))
            time.sleep(0.5)

    sampler = threading.Thread(target=count_files, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    res = find_near_duplicates([folder], out, MinHashConfig(executor="process", workers=2))
    secs = time.perf_counter() - t0
    running.clear()
    sampler.join()
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    driver, worker = (u.ru_maxrss / 1024 for u in usage)
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)  # driver + reaped pool workers: load-independent
    files = sum(len(names) for _, _, names in os.walk(res.work))
    dups = res.duplicates
    cluster = dict(zip(dups.column("id").to_pylist(), dups.column("cluster_id").to_pylist(), strict=True))
    t = pq.read_table(truth)
    t = t.filter(t.column("jaccard").to_numpy() >= 0.85)
    hit = sum(
        1
        for a, b in zip(t.column("a").to_pylist(), t.column("b").to_pylist(), strict=True)
        if a in cluster and cluster[a] == cluster.get(b)
    )
    print(
        json.dumps(
            {
                "docs": n,
                "driver_mb": round(driver, 1),
                "driver_before_mb": round(base_rss, 1),
                "worker_mb": round(worker, 1),
                "files": files,
                "peak_files": peak["files"],
                "seconds": round(secs, 1),
                "cpu_s": round(cpu, 1),
                "recall": hit / max(1, t.num_rows),
                "pairs": t.num_rows,
                "removed": res.stats.get("removed"),
            }
        )
    )


def prepare(n: int) -> None:
    """Inputs and planted truth, in their own process so that their memory never counts as the driver's."""
    from bench.bench_dedup import make_input, planted_truth

    planted_truth(make_input(n), n)


def main(sizes: list[int], note: str) -> None:
    rows = []
    for n in sizes:
        out = os.path.join(WORK, "dedup-scale", f"work-{n}")
        subprocess.run([sys.executable, __file__, "--prepare", str(n)], check=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), out], check=True, capture_output=True, text=True
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(r), file=sys.stderr)
        rows.append(
            [
                f"{n:,}",
                r["driver_mb"],
                r["worker_mb"],
                f"{r.get('peak_files', '?')} / {r['files']}",
                r["seconds"],
                round(n / r["seconds"]),
                r["cpu_s"],
                round(n / r["cpu_s"]),
                f"{r['recall']:.5f} of {r['pairs']:,}",
                r["removed"],
            ]
        )
        write_section("dedup-scale", table_text(rows, note))  # after every size: a stopped run keeps its rows


def table_text(rows: list[list[object]], note: str) -> str:
    return (
        "## Dedup at scale (MinHash, process executor, 2 workers, R = 16 partitions, M = 16 signature tasks)\n\n"
        f"{machine()}{'; ' + note if note else ''}. Inputs: `bench_dedup`'s real paragraphs with 20% planted "
        "near-duplicates, 10,000 documents per file, made in a separate process; each size in a fresh driver process "
        "(`python bench/bench_dedup_scale.py SIZE ...`). Driver peak RSS is the driver process alone (it includes "
        "~80 MiB of imports); largest worker is the largest peak RSS of the pool's processes (RUSAGE_CHILDREN); work "
        "files are the work folder's at its peak (sampled twice a second) / left after the run; CPU s is user + "
        "system of the driver and its reaped workers, so *docs per CPU s* does not depend on other users' load "
        "as wall time does.\n\n" + md_table(HEADERS, rows) + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--prepare":
        prepare(int(sys.argv[2]))
    else:
        ap = argparse.ArgumentParser(description="MinHash dedup: driver memory and files vs corpus size")
        ap.add_argument("sizes", nargs="*", type=int, default=[50_000, 200_000])
        ap.add_argument("--note", default="shared, loaded machine (2 cores, ~7 users)")
        a = ap.parse_args()
        main(a.sizes, a.note)
