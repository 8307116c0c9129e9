"""The systems ``bench_dedup`` compares, each run end to end over a folder of Parquet documents (id, text):
Winnow's MinHash workflow, datasketch's MinHashLSH, datatrove's 4-stage MinHash and rensa's MinHash + LSH.  Each
returns ``{"seconds", "docs", "cluster"}`` (cluster: id -> cluster id, or for datasketch id -> an earlier similar id).
"""

from __future__ import annotations

import os
import time


def run_winnow(folder: str, out: str, workers: int = 2) -> dict:
    import shutil

    from dedup.minhash import MinHashConfig
    from dedup.workflow import find_near_duplicates

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = find_near_duplicates([folder], out, MinHashConfig(executor="process", workers=workers))
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


def run_rensa(folder: str) -> dict:
    """rensa 0.5.0 end to end in one process, as its README deduplicates: the same 5-word shingles as the others,
    ``RMinHash`` (112 permutations) and ``RMinHashLSH`` (14 bands x 8), candidates kept when rensa's estimated
    Jaccard is >= 0.8 (no exact verification); clusters by union-find over the kept pairs."""
    import glob

    import pyarrow.parquet as pq
    from rensa import RMinHash, RMinHashLSH

    from dedup.text import words_of

    t0 = time.perf_counter()
    lsh = RMinHashLSH(threshold=0.8, num_perm=112, num_bands=14)
    ids: list[str] = []
    sketches: list = []
    parent: list[int] = []

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        t = pq.read_table(p, columns=["id", "text"])
        for doc_id, text in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True):
            w = words_of(text)
            m = RMinHash(num_perm=112, seed=42)
            m.update([" ".join(w[k : k + 5]) for k in range(max(1, len(w) - 4))])
            key = len(ids)
            ids.append(doc_id)
            sketches.append(m)
            parent.append(key)
            for hit in lsh.query(m):
                if m.jaccard(sketches[hit]) >= 0.8:
                    a, b = root(hit), root(key)
                    parent[max(a, b)] = min(a, b)
            lsh.insert(key, m)
    secs = time.perf_counter() - t0
    roots = [root(i) for i in range(len(ids))]
    sizes: dict[int, int] = {}
    for r in roots:
        sizes[r] = sizes.get(r, 0) + 1
    cluster = {ids[i]: ids[r] for i, r in enumerate(roots) if sizes[r] > 1}
    return {"seconds": secs, "docs": len(ids), "cluster": cluster}


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
