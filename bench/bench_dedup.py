"""Dedup benchmark: Winnow MinHash (end to end, 2 worker processes) vs datasketch MinHashLSH in memory and
datatrove's 4-stage MinHash (LocalPipelineExecutor, 2 workers), on the same documents.

Documents are runs of real paragraphs from ../shared/corpus with 20% planted near-duplicates at known edit rates
(dedup.evalset).  Recall is over planted pairs whose exact Jaccard is >= 0.85; precision over verified edges.
Each system runs in its own subprocess so peak RSS is its own.  Usage: ``python bench/bench_dedup.py [20000 100000]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, WORK, machine, md_table, peak_rss_mb, write_section  # noqa: E402


def make_input(n: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.evalset import make_documents, real_paragraphs

    folder = os.path.join(WORK, "dedup", f"in-{n}")
    if os.path.exists(os.path.join(folder, "_meta.json")):
        return folder
    os.makedirs(folder, exist_ok=True)
    docs = make_documents(real_paragraphs(CORPUS), n, dup_frac=0.2, seed=42)
    per = 10_000
    for i in range(0, n, per):
        schema = pa.schema(
            [("id", pa.string()), ("text", pa.string()), ("dup_of", pa.string()), ("rate", pa.float64())]
        )
        pq.write_table(
            pa.table({k: docs[k][i : i + per] for k in schema.names}, schema=schema),
            os.path.join(folder, f"part-{i // per:05d}.parquet"),
        )
    with open(os.path.join(folder, "_meta.json"), "w") as f:
        json.dump({"docs": n}, f)
    return folder


def planted_truth(folder: str) -> list[tuple[str, str, float]]:
    import glob

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.text import jaccard, shingle_set

    t = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(folder, "*.parquet")))])
    text = dict(zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True))
    out = []
    for i, d in zip(t.column("id").to_pylist(), t.column("dup_of").to_pylist(), strict=True):
        if d is not None:
            out.append((i, d, jaccard(shingle_set(text[i]), shingle_set(text[d]))))
    return out


def run_winnow(folder: str, out: str) -> dict:
    import shutil

    from dedup.minhash import MinHashConfig
    from dedup.workflow import find_near_duplicates

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = find_near_duplicates([folder], out, MinHashConfig(executor="process", workers=2))
    secs = time.perf_counter() - t0
    cluster = dict(
        zip(
            res.duplicates.column("id").to_pylist(),
            res.duplicates.column("cluster_id").to_pylist(),
            strict=True,
        )
    )
    return {"seconds": secs, "docs": res.stats["docs"], "cluster": cluster, "stats": res.stats}


def run_datasketch(folder: str) -> dict:
    import glob

    import pyarrow.parquet as pq
    from datasketch import MinHash, MinHashLSH

    from dedup.text import words_of

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=112)
    parent: dict[str, str] = {}
    n = 0
    for p in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        t = pq.read_table(p, columns=["id", "text"])
        for i, text in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True):
            w = words_of(text)
            m = MinHash(num_perm=112, seed=1)
            m.update_batch([" ".join(w[k : k + 5]).encode() for k in range(max(1, len(w) - 4))])
            hits = lsh.query(m)
            if hits:
                parent[i] = min(hits)
            lsh.insert(i, m)
            n += 1
    secs = time.perf_counter() - t0
    return {"seconds": secs, "docs": n, "cluster": parent}


def run_datatrove(folder: str, out: str) -> dict:
    """datatrove's 4-stage MinHash at its defaults (14 x 8, 5-grams), 2 workers, cluster ids kept for recall."""
    import glob
    import shutil

    import xxhash
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashes import xxhash as dt_xxhash

    # datatrove 0.10.1 hands str to xxhash, which xxhash >= 4 refuses: encode first (its default hash, kept for
    # fairness; the executor forks, so its workers inherit this)
    dt_xxhash.xxhash32 = lambda s: xxhash.xxh32_intdigest(s.encode("utf-8") if isinstance(s, str) else s)
    dt_xxhash.xxhash64 = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8") if isinstance(s, str) else s)
    shutil.rmtree(out, ignore_errors=True)
    files = len(glob.glob(os.path.join(folder, "*.parquet")))
    t0 = time.perf_counter()

    def reader():
        return ParquetReader(
            folder, glob_pattern="*.parquet", text_key="text", id_key="id", read_metadata=False
        )

    def run(
        pipeline, tasks, stage
    ):  # one logging dir per stage: datatrove skips tasks it finds completed there
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=2, logging_dir=f"{out}/logs/{stage}"
        ).run()

    run([reader(), MinhashDedupSignature(output_folder=f"{out}/sigs")], files, "signatures")
    run([MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets")], 14, "buckets")
    run(
        [
            MinhashDedupCluster(
                input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", save_cluster_id=True
            )
        ],
        1,
        "clusters",
    )
    run(
        [
            reader(),
            MinhashDedupFilter(
                input_folder=f"{out}/remove_ids",
                load_cluster_ids=True,
                exclusion_writer=ParquetWriter(f"{out}/removed"),
            ),
            ParquetWriter(f"{out}/kept"),
        ],
        files,
        "filter",
    )
    secs = time.perf_counter() - t0
    import pyarrow.parquet as pq

    cluster, docs = {}, 0
    for p in glob.glob(os.path.join(out, "kept", "*.parquet")) + glob.glob(
        os.path.join(out, "removed", "*.parquet")
    ):
        for d in pq.read_table(p, columns=["id", "metadata"]).to_pylist():
            docs += 1
            cid = (d.get("metadata") or {}).get("minhash_cluster_id")
            if cid is not None:
                cluster[d["id"]] = cid
    return {"seconds": secs, "docs": docs, "cluster": cluster}


def child(kind: str, n: int) -> None:
    folder = make_input(n)
    if kind == "winnow":
        r = run_winnow(folder, os.path.join(WORK, "dedup", f"out-{n}"))
    elif kind == "datatrove":
        r = run_datatrove(folder, os.path.join(WORK, "dedup", f"dt-{n}"))
    else:
        r = run_datasketch(folder)
    truth = planted_truth(folder)
    hi = [(a, b) for a, b, j in truth if j >= 0.85]
    c = r["cluster"]
    if kind in ("winnow", "datatrove"):
        found = sum(1 for a, b in hi if a in c and c.get(a) == c.get(b))
    else:  # datasketch: a doc is linked to an earlier similar one
        found = sum(1 for a, b in hi if c.get(a) == b or c.get(b) == a or (a in c and c.get(a) == c.get(b)))
    r.pop("cluster")
    r.update(
        {
            "recall_j085": round(found / len(hi), 4) if hi else None,
            "pairs_j085": len(hi),
            "planted": len(truth),
            "rss_mb": peak_rss_mb(),
        }
    )
    print(json.dumps(r, default=str))


def main(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        make_input(n)
        for kind in ("winnow", "datasketch", "datatrove"):
            if kind != "winnow" and n > 20_000:
                continue  # the references run at the smallest size only (datatrove: ~86 s at 20k here)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(
                [
                    kind,
                    f"{n:,}",
                    f"{r['seconds']:.1f}",
                    f"{r['docs'] / r['seconds']:,.0f}",
                    r["rss_mb"],
                    r["recall_j085"],
                    r["pairs_j085"],
                ]
            )
            print(rows[-1], flush=True)
    md = (
        "## Dedup (MinHash near-duplicates)\n\n"
        + machine()
        + ".\n\n"
        + md_table(
            [
                "system",
                "docs",
                "wall s",
                "docs/s",
                "peak RSS MiB",
                "recall (planted J>=0.85)",
                "pairs J>=0.85",
            ],
            rows,
        )
    )
    write_section("dedup", md)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main([int(x) for x in sys.argv[1:]] or [20_000, 100_000])
