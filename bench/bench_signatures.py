"""MinHash signature pass at the largest size that fits here: the per-unit costs behind docs/scale.md's projection.

Short synthetic documents (``SIG_WORDS`` words drawn from a Zipf-like vocabulary of real words, so shingles are
realistic and almost all distinct) are written once into files of ``SIG_FILE_DOCS`` documents (cached under
bench/generated/signatures/, made in a separate process).  Then Winnow's pass 1 (``dedup.minhash.signature_task``:
shingling, 108 permutations, 18 band keys per document, band rows split into R hash partitions, the doc table)
runs over them as M tasks on a process pool of 2 workers, exactly as ``find_near_duplicates`` starts.  Measured:
wall s, CPU s of the pool's processes (sampled: other users' load does not count), documents per CPU
second, bytes and files written (band partitions and doc tables), and the bytes per document the later passes
shuffle (the band rows).  Writes the "signatures" section of bench/results.md.

    python bench/bench_signatures.py [N]      N documents (default SIG_DOCS or 1,000,000)
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, WORK, TreeMemory, machine, md_table, write_section  # noqa: E402

N_DOCS = int(os.environ.get("SIG_DOCS", "1000000"))  # make scale: 10,000,000
WORDS = int(os.environ.get("SIG_WORDS", "40"))
FILE_DOCS = int(os.environ.get("SIG_FILE_DOCS", "250000"))
TASKS = int(os.environ.get("SIG_TASKS", "16"))
PARTITIONS = int(os.environ.get("SIG_PARTITIONS", "16"))
OUT = os.path.join(WORK, "signatures")
log = logging.getLogger("bench.signatures")


def input_folder(n: int) -> str:
    return os.path.join(OUT, f"in-{n}-{WORDS}w")


def generate(n: int) -> str:
    """``n`` documents of ``WORDS`` words in Parquet files (id, text); cached (``_meta.json`` written last)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.evalset import real_paragraphs

    folder = input_folder(n)
    if os.path.exists(os.path.join(folder, "_meta.json")):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    vocab = np.array(sorted({w for p in real_paragraphs(CORPUS)[:20000] for w in p.split()}), dtype=object)
    weights = 1.0 / np.arange(1, len(vocab) + 1)  # Zipf: a few frequent words, a long tail
    rng = np.random.default_rng(7)
    for lo in range(0, n, FILE_DOCS):
        k = min(FILE_DOCS, n - lo)
        words = vocab[rng.choice(len(vocab), size=(k, WORDS), p=weights / weights.sum())]
        texts = [" ".join(row) for row in words.tolist()]
        ids = [f"sig-{i:09d}" for i in range(lo, lo + k)]
        pq.write_table(
            pa.table({"id": ids, "text": texts}), os.path.join(folder, f"part-{lo // FILE_DOCS:05d}.parquet")
        )
    with open(os.path.join(folder, "_meta.json"), "w") as f:
        json.dump({"docs": n, "words": WORDS, "vocab": len(vocab)}, f)
    return folder


def folder_bytes(path: str) -> tuple[int, int]:
    """(bytes, files) under ``path``."""
    size = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            size += os.path.getsize(os.path.join(root, name))
            files += 1
    return size, files


def run(n: int) -> dict:
    """Pass 1 over the generated inputs with a 2-worker process pool; sizes and rates as a dict."""
    from dedup.corpus import build_inputs, file_groups
    from dedup.minhash import MinHashConfig, signature_task
    from pipelines.core.executor import get_executor

    folder = input_folder(n)
    work = os.path.join(OUT, "work")
    shutil.rmtree(work, ignore_errors=True)
    cfg = MinHashConfig(executor="process", workers=2, tasks=TASKS, partitions=PARTITIONS)
    files = build_inputs([folder])
    groups = file_groups(files, cfg.tasks)
    with TreeMemory(interval=0.5) as mem:
        t0 = time.perf_counter()
        infos = get_executor("process", 2).map(
            signature_task, [(g, fs, cfg, work) for g, fs in enumerate(groups)]
        )
        secs = time.perf_counter() - t0
    bands_b, bands_f = folder_bytes(os.path.join(work, "bands"))
    docs_b, docs_f = folder_bytes(os.path.join(work, "doctable"))
    all_b, all_f = folder_bytes(work)
    in_b, _ = folder_bytes(folder)
    out = {
        "docs": sum(i["docs"] for i in infos),
        "input_files": len(files),
        "tasks": len(groups),
        "partitions": cfg.partitions,
        "bands": cfg.bands,
        "rows": cfg.rows,
        "seconds": round(secs, 1),
        "cpu_s": mem.cpu_s,
        "input_bytes": in_b,
        "band_bytes": bands_b,
        "band_files": bands_f,
        "doctable_bytes": docs_b,
        "doctable_files": docs_f,
        "work_files": all_f,
        "work_bytes": all_b,
        "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest_process_mb": mem.max_rss_mb,
    }
    shutil.rmtree(work, ignore_errors=True)
    return out


def main(n: int) -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(n)], check=True)
    gen_s = time.perf_counter() - t0
    proc = subprocess.run(
        [sys.executable, __file__, "--run", str(n)], check=True, capture_output=True, text=True
    )
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    log.info("%s", json.dumps(r))
    d = r["docs"]
    rows = [
        ["documents", f"{d:,}"],
        [
            "input files / signature tasks (M) / partitions (R)",
            f"{r['input_files']} / {r['tasks']} / {r['partitions']}",
        ],
        ["wall s (2 workers) / docs/s", f"{r['seconds']} / {d / r['seconds']:,.0f}"],
        ["worker CPU s / **docs per CPU s**", f"{r['cpu_s']} / **{d / r['cpu_s']:,.0f}**"],
        ["input bytes per document (Parquet, text)", f"{r['input_bytes'] / d:.1f}"],
        [
            f"band rows: bytes per document ({r['bands']} rows of band, key, gid)",
            f"**{r['band_bytes'] / d:.1f}** ({r['band_bytes'] / 2**30:.2f} GiB)",
        ],
        ["band files (M x R)", r["band_files"]],
        ["doc table bytes per document / files", f"{r['doctable_bytes'] / d:.1f} / {r['doctable_files']}"],
        ["work files in all", r["work_files"]],
        [
            "driver peak RSS MiB / largest process peak RSS MiB",
            f"{r['driver_peak_mb']} / {r['largest_process_mb']}",
        ],
    ]
    text = (
        f"## MinHash signature pass at {d:,} documents\n\n{machine()}; shared machine (2 cores, ~8 engineers): wall "
        "times are noisy, CPU s and bytes are not. `python bench/bench_signatures.py` (SIG_DOCS, SIG_WORDS). "
        f"Synthetic documents of {WORDS} words drawn from a Zipf-weighted vocabulary of real words (generated in "
        f"{gen_s:.0f} s, cached); Winnow's pass 1 as `find_near_duplicates` runs it (18 x 6 permutations, 5-word "
        "shingles, process pool of 2). Cost per document grows with its shingles: the real-paragraph documents of "
        "the Dedup tables average 404 words (median 341).\n\n" + md_table(["measure", "value"], rows) + "\n"
    )
    write_section("signatures", text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) > 2 and sys.argv[1] == "--generate":
        generate(int(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "--run":
        print(json.dumps(run(int(sys.argv[2]))))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else N_DOCS)
