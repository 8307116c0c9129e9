"""Semantic dedup benchmark: the SemanticDedupStage end to end (embed, k-means, assign, cosine search, components,
survivors, removal) at 20k and 100k documents, docs/s and peak memory, with planted reworded pairs.

Documents are 3-6 random real paragraphs from ../shared/corpus (``dedup.evalset.real_paragraphs``); 5% of them get
a planted rewording (sentences shuffled, a word in four dropped, neighbours swapped: ``reword`` of the default
model's evaluation), which MinHash does not find.  Recall is the share of planted pairs that end in one cluster.
Each size runs in its own subprocess with the in-process executor, so its peak RSS (VmHWM) is the stage's alone.

    python bench/bench_semantic.py [SIZE ...]        (default: 20000; WINNOW_BENCH_SEMANTIC="20000 100000")

Prints a markdown table for bench/results.md (this script does not write that file).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, WORK, machine, md_table  # noqa: E402

PER_FILE = 2000
HEADERS = [
    "docs",
    "assign_to",
    "files",
    "wall s",
    "docs/s",
    "peak RSS MiB",
    "removed",
    "planted pairs",
    "recall",
    "k-means clusters",
]


def make_input(n: int, folder: str, seed: int = 0) -> int:
    """``n`` documents (5% of them planted rewordings of another) in Parquet files of PER_FILE rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from classifiers.train_embeddings import reword
    from dedup.evalset import real_paragraphs

    paragraphs = real_paragraphs(CORPUS)
    rng = random.Random(seed)
    texts, ids = [], []
    planted = 0
    while len(texts) < n:
        i = len(texts)
        if texts and rng.random() < 0.05:
            j = rng.randrange(len(texts))
            texts.append(reword(texts[j], rng))
            ids.append(f"{ids[j]}~rw{i}")
            planted += 1
        else:
            texts.append("\n".join(rng.sample(paragraphs, rng.randint(3, 6))))
            ids.append(f"d{i}")
    docs = os.path.join(folder, "docs")
    os.makedirs(docs)
    for f, lo in enumerate(range(0, n, PER_FILE)):
        t = pa.table({"id": ids[lo : lo + PER_FILE], "text": texts[lo : lo + PER_FILE]})
        t = t.append_column("meta", pa.array(["{}"] * t.num_rows))
        pq.write_table(t, os.path.join(docs, f"part-{f:05d}.parquet"))
    return planted


def run_stage(folder: str, assign_to: int) -> dict:
    """In the child: the stage over ``folder``, its wall time, peak RSS and planted-pair recall."""
    import pyarrow.parquet as pq

    from dedup.stages import SemanticDedupStage
    from pipelines.core.corpus_stage import run_stage

    t0 = time.perf_counter()
    stage = SemanticDedupStage(settings={"executor": "local", "tasks": 8, "assign_to": assign_to})
    stats = run_stage(stage, folder)
    wall = time.perf_counter() - t0
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    dup = pq.read_table(
        os.path.join(folder, "duplicates", "semantic_dedup.parquet"), columns=["id", "cluster_id"]
    )
    cluster = dict(zip(dup.column("id").to_pylist(), dup.column("cluster_id").to_pylist(), strict=True))
    planted = [i for i in cluster if "~rw" in i]
    found = sum(1 for i in planted if cluster.get(i.split("~")[0]) == cluster[i])
    return {"wall": wall, "rss": hwm, "stats": stats, "found": found}


def measure(n: int, assign_to: int) -> list[object]:
    folder = os.path.join(WORK, f"semantic-{n}")
    shutil.rmtree(folder, ignore_errors=True)
    planted = make_input(n, folder)
    code = f"import json, bench.bench_semantic as b; print(json.dumps(b.run_stage({folder!r}, {assign_to}), default=str))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    s = r["stats"]
    shutil.rmtree(folder, ignore_errors=True)
    return [
        n,
        assign_to,
        -(-n // PER_FILE),
        round(r["wall"], 1),
        round(n / r["wall"]),
        round(r["rss"]),
        s["removed"],
        planted,
        f"{r['found'] / max(1, planted):.3f}",
        s["kmeans_clusters"],
    ]


def main(sizes: list[int]) -> None:
    if not os.path.isdir(CORPUS):
        print(f"bench_semantic: {CORPUS} is absent (the benchmark reads real paragraphs from it); skipped")
        return
    rows = [measure(n, m) for n in sizes for m in (1, 2)]
    print(
        f"### Semantic dedup (default model, threshold 0.9, 64 clusters, 8 tasks, in-process executor; {machine()})\n"
    )
    print(md_table(HEADERS, rows))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [
        int(x) for x in os.environ.get("WINNOW_BENCH_SEMANTIC", "20000").split()
    ]
    main(args)
