"""Mixtures benchmark: Llama-3 token counting (tokens/s) and 13-gram decontamination (documents/s) on real samples.

Documents: the Gutenberg books and CommonCrawl text samples in ../shared/corpus, cut into ~2,000-character
documents (a typical web page).  Run: ``.venv/bin/python bench/bench_mixtures.py`` (``make bench`` runs it).

``--scale [--sizes 20000,80000] [--workers 2] [--old DIR] [--no-build]`` prints (and does not write to results.md) the build as
executor tasks: decontamination docs/s per core on a process pool, and build time and driver peak RSS, cold and
warm, at two generated corpus sizes, beside the previous build when ``DIR`` holds its checkout.

``--driver [--sizes 200000,1600000]`` prints the driver's memory after the scan, each size in a fresh process:
duplicate ids, a top_fraction cut and sampling half the tokens as tasks on a 2-process pool over 16 candidate
partitions written as the scan tasks write them (synthetic candidates of one entry, 5,000 a docs file; no docs
are read, so it runs at sizes a shared machine cannot generate documents for).
"""

from __future__ import annotations

import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.common import CORPUS, machine, md_table, peak_rss_mb, write_section  # noqa: E402
from mixtures.benchmarks import load_index  # noqa: E402
from mixtures.decontam import NGramIndex, decontaminate_file, window_hashes  # noqa: E402
from mixtures.spec import load_mixture  # noqa: E402
from mixtures.tokens import TokenCounter  # noqa: E402


def sample_docs(chunk: int = 2000) -> list[str]:
    files = sorted(glob.glob(os.path.join(CORPUS, "books", "*.txt")))
    files += sorted(
        p
        for p in glob.glob(os.path.join(CORPUS, "commoncrawl", "text", "**", "*"), recursive=True)
        if os.path.isfile(p) and not p.endswith(".md")
    )
    docs = []
    for p in files:
        text = open(p, encoding="utf-8", errors="replace").read()
        docs += [text[i : i + chunk] for i in range(0, len(text), chunk)]
    return docs


def bench_tokens(docs: list[str]) -> list[list[object]]:
    import quicktok

    rows = []
    enc = quicktok.get_encoding("llama3")
    chars = sum(len(d) for d in docs)
    for label, fn in [
        ("quicktok count_batch (all threads)", lambda: TokenCounter("llama3", threads=0).count(docs)),
        ("quicktok count_batch (1 thread)", lambda: TokenCounter("llama3", threads=1).count(docs)),
        ("quicktok encode per document", lambda: [len(enc.encode(d)) for d in docs]),
    ]:
        fn()  # warm-up: loads the vocabulary
        t0 = time.perf_counter()
        counts = fn()
        dt = time.perf_counter() - t0
        total = int(sum(counts))
        rows.append(
            [label, f"{len(docs):,}", f"{chars / 1e6:.1f} M", f"{total:,}", f"{dt:.2f}", f"{total / dt:,.0f}"]
        )
    return rows


class PerDocumentLoop:
    """The decontamination of commit 3c4b165, kept here as the "before": one document at a time (datatrove's
    simplify_text, word hashes, 13 numpy passes over that document's words, searchsorted, each hit's words joined
    for the comparison with the stored n-gram text; the comparison itself is left out, as no text is shipped now and
    hits are rare)."""

    def __init__(self, index: NGramIndex):
        from datatrove.utils.text import simplify_text

        from dedup.text import WordHasher

        self.simplify, self.hash, self.index = simplify_text, WordHasher().hash_words, index

    def match(self, text: str) -> bool:
        words = [w for w in self.simplify(text or "").split(" ") if w]
        wh = window_hashes(self.hash(words), self.index.n)
        if not len(wh):
            return False
        keys = self.index.keys
        pos = np.searchsorted(keys, wh)
        pos[pos >= len(keys)] = 0
        hits = np.flatnonzero(keys[pos] == wh)
        return any(" ".join(words[k : k + self.index.n]) for k in hits.tolist())


def bench_decontam(docs: list[str], repeats: int = 5) -> list[list[object]]:
    """docs/s of the per-document loop vs the batch path (match_batch, and decontaminate_file on a Parquet file,
    read + write included), best of ``repeats`` interleaved rounds, one process (= one core)."""
    import shutil
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    index = load_index(load_mixture("core").decontaminate)  # the shipped hash sets
    load_s = time.perf_counter() - t0
    old = PerDocumentLoop(index)
    tmp = tempfile.mkdtemp(prefix="bench-decontam-")
    docs_file = os.path.join(tmp, "docs", "bench.parquet")
    os.makedirs(os.path.dirname(docs_file))
    ids = [f"d{i}" for i in range(len(docs))]
    pq.write_table(pa.table({"id": ids, "text": docs}), docs_file)

    def per_file() -> int:
        os.utime(docs_file)  # a new mtime: the sidecar is recomputed, not reused
        path, _ = decontaminate_file(docs_file, index)
        return pq.read_metadata(path).num_rows

    def old_on_file() -> int:
        texts = pq.read_table(docs_file, columns=["id", "text"]).column("text").to_pylist()
        return sum(old.match(d) for d in texts)

    # (label, function, the row it is compared with): in-memory with in-memory, file with file
    runs = [
        (
            "per-document loop (before, 3c4b165), documents in memory",
            lambda: sum(old.match(d) for d in docs),
            0,
        ),
        (
            "match_batch, 4,096 docs per batch, documents in memory",
            lambda: sum(m is not None for m in _batched(index, docs)),
            0,
        ),
        ("per-document loop (before), reading the docs file", old_on_file, 2),
        ("decontaminate_file: docs file in, sidecar Parquet out", per_file, 2),
    ]
    for _, fn, _ in runs:
        fn()  # warm-up: word-hash cache, imports
    # rounds interleave the three, so a busy moment of the (shared) machine hits all of them alike
    best, hits = {label: float("inf") for label, _, _ in runs}, {}
    for _ in range(repeats):
        for label, fn, _ in runs:
            t0 = time.perf_counter()
            hits[label] = fn()
            best[label] = min(best[label], time.perf_counter() - t0)
    rows = []
    for label, _, ref in runs:
        rate, base = len(docs) / best[label], len(docs) / best[runs[ref][0]]
        rows.append(
            [
                label,
                f"{len(docs):,}",
                hits[label],
                f"{best[label]:.2f}",
                f"{rate:,.0f}",
                f"{rate / base:.1f}x",
            ]
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return [[f"{len(index):,}", f"{load_s:.2f}"]], rows


def _batched(index: NGramIndex, docs: list[str], size: int = 4096) -> list:
    out = []
    for i in range(0, len(docs), size):
        out += index.match_batch(docs[i : i + size])
    return out


_BUILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from mixtures.build import build_stage
from mixtures.spec import load_mixture
t0 = time.perf_counter()
m = build_stage(load_mixture(path=sys.argv[3]), sys.argv[2], **json.loads(sys.argv[4]))
print(json.dumps({"s": time.perf_counter() - t0, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "docs": m["documents"], "shards": len(m["shards"])}))
"""


def make_tree(root: str, n_docs: int, per_file: int = 5000) -> str:
    """A curated OUTPUT of ``n_docs`` generated documents (70% web, 20% wikipedia, 10% books), ``per_file`` a file."""
    from tests.helpers.mixture_data import docs_table, write_docs

    for source, frac in (("commoncrawl", 0.7), ("wikipedia", 0.2), ("books", 0.1)):
        n = int(n_docs * frac)
        for k in range(0, n, per_file):
            write_docs(root, source, docs_table(source, min(per_file, n - k), seed=k), f"{source}-{k}")
    return root


def _build(code: str, tree: str, mix: str, kwargs: dict) -> dict:
    """One build in a fresh interpreter (its own peak RSS): wall seconds, driver peak RSS MiB, rows, shards."""
    import json
    import subprocess

    env = {**os.environ, "PYTHONPATH": code}
    out = subprocess.run(
        [sys.executable, "-c", _BUILD, code, tree, mix, json.dumps(kwargs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_build_scale(sizes: list[int], old: str | None, workers: int = 2) -> list[list[object]]:
    """Build time and driver peak RSS, cold (token counts and decontamination run) and warm (sidecars reused), at
    each corpus size; ``old``: a checkout of the previous build (``git archive <commit> | tar -x -C DIR``)."""
    import shutil
    import tempfile

    from tests.helpers.mixture_data import write_mixture

    new = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for n in sizes:
        base = tempfile.mkdtemp(prefix=f"bench-mix-{n}-")
        mix = write_mixture(
            os.path.join(base, "mix.yaml"),
            {"commoncrawl": {"share": 0.7}, "wikipedia": {"share": 0.2}, "books": {"share": 0.1}},
            stage="bench",
            shard_max_tokens=2_000_000,
            decontaminate={"benchmarks": ["gsm8k", "hellaswag", "humaneval", "mmlu"]},
        )
        tree = make_tree(os.path.join(base, "tree"), n)
        variants = [
            ("new, process pool", new, {"executor": "process", "workers": workers}),
            ("new, local (1 process)", new, {"executor": "local"}),
        ]
        if old:
            variants.append(("before (driver loop)", old, {}))
        for label, code, kwargs in variants:
            copy = os.path.join(base, label.split()[0] + str(len(rows)))
            shutil.copytree(tree, copy)
            cold, warm = _build(code, copy, mix, kwargs), _build(code, copy, mix, kwargs)
            rows.append(
                [
                    f"{n:,}",
                    label,
                    f"{cold['s']:.1f}",
                    f"{cold['rss']:.0f}",
                    f"{warm['s']:.1f}",
                    f"{warm['rss']:.0f}",
                    f"{cold['docs']:,}",
                    cold["shards"],
                ]
            )
            print(rows[-1], flush=True)
        shutil.rmtree(base, ignore_errors=True)
    return rows


def bench_decontam_pool(n_docs: int, workers: int) -> list[list[object]]:
    """docs/s per core of decontaminate_file as executor tasks (one per docs file) on a process pool."""
    import shutil
    import tempfile
    from functools import partial

    from pipelines.core.executor import get_executor

    index = load_index(load_mixture("core").decontaminate)
    base = tempfile.mkdtemp(prefix="bench-decontam-pool-")
    tree = make_tree(base, n_docs)
    files = sorted(glob.glob(os.path.join(tree, "*", "docs", "*.parquet")))
    import resource

    import pyarrow.parquet as pq

    texts = pq.read_table(files[0], columns=["text"]).column("text").to_pylist()  # the same kind of documents
    old = PerDocumentLoop(index)
    cpu = time.process_time()
    for t in texts:
        old.match(t)
    old_rate = len(texts) / (time.process_time() - cpu)
    # CPU seconds of the pool's workers (reaped when the pool closes): a rate per core that a busy machine's
    # waiting time does not dilute
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    get_executor("process", workers).map(partial(decontaminate_file, index=index), files)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(base, ignore_errors=True)
    new_rate = n_docs / cpu_s
    return [
        ["per-document loop (before), one process", f"{len(texts):,}", 1, "", f"{old_rate:,.0f}", "1.0x"],
        [
            f"decontaminate_file tasks, {len(files)} files",
            f"{n_docs:,}",
            workers,
            f"{wall:.1f}",
            f"{new_rate:,.0f}",
            f"{new_rate / old_rate:.1f}x",
        ],
    ]


_DRIVER = r"""
import json, resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from bench.bench_mixtures import driver_run
print(json.dumps(driver_run(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
"""


def _synthetic_candidates(work: str, n: int, partitions: int, per_file: int) -> list[str]:
    """Scan outputs of ``n`` candidates of one entry (``per_file`` a docs file, 2% of ids repeated in the next
    file), written into the candidate partitions as the scan tasks write them; the docs files hold ids only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mixtures.partitions import CANDIDATES, write_candidates
    from mixtures.sample import id_hashes, seeded_hashes

    files = []
    for f, start in enumerate(range(0, n, per_file)):
        m = min(per_file, n - start)
        ids = [f"doc/{i}" for i in range(max(0, start - per_file // 50), start + m)]
        rng = np.random.default_rng(f)
        table = pa.table(
            {
                "entry": np.zeros(len(ids), np.int16),
                "rank_hash": seeded_hashes(0, "commoncrawl", ids),
                "id_hash": id_hashes(ids),
                "file_no": np.full(len(ids), f, np.int32),
                "row": np.arange(len(ids), dtype=np.int64),
                "n_tokens": rng.integers(50, 2000, len(ids)),
                "rank": rng.random(len(ids)).round(3),  # ties at the cut
                "contaminated": np.zeros(len(ids), bool),
                "topic": np.full(len(ids), -1, np.int16),
            },
            schema=CANDIDATES,
        )
        write_candidates(work, partitions, f, table)
        files.append(os.path.join(work, f"docs-{f:06d}.parquet"))  # ids only: read for ties at the cut
        pq.write_table(pa.table({"id": ids}), files[-1])
    return files


def driver_run(n: int, partitions: int, work: str) -> dict:
    """The build's driver after the scan (duplicate ids, a 90% top_fraction cut, sampling half the tokens) over
    synthetic candidate partitions, on a 2-process pool; the driver's own peak RSS and traced peak."""
    import resource
    import tracemalloc

    from mixtures.sampling import sample_entries
    from mixtures.select import partition_entries
    from mixtures.spec import parse_mixture
    from mixtures.tasks import ScanResult
    from pipelines.core.executor import get_executor

    spec = parse_mixture(
        {
            "stage": "mem",
            "total_tokens": "max",
            "sources": {"commoncrawl": {"share": 1.0, "rank_by": "q", "top_fraction": 0.9}},
        }
    )
    files = _synthetic_candidates(work, n, partitions, 5000)
    results = [ScanResult(f, "bench", 0, False) for f in range(len(files))]
    ex = get_executor("process", 2)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    columns = {"commoncrawl": (("q", "DOUBLE"),)}
    (st,) = partition_entries(
        spec, "OUT", columns, {"commoncrawl": [0]}, results, files, ex, work, partitions
    )
    entries, touched = sample_entries(ex, work, "mem", [st], {"commoncrawl": 1.0}, st.available * 0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "candidates": st.candidates,
        "sampled": entries[0]["documents"],
        "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss0,
        "traced_mb": peak / 2**20,
        "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "s": time.perf_counter() - t0,
        "files": len(files),
    }


def bench_driver_memory(sizes: list[int], partitions: int = 16) -> list[list[object]]:
    """Per size, a fresh driver process (its own peak RSS) over ``partitions`` candidate partitions."""
    import json
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-mix-driver-") as work:
            out = subprocess.run(
                [sys.executable, "-c", _DRIVER, root, str(n), str(partitions), work],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            [
                f"{n:,}",
                f"{r['candidates']:,}",
                r["files"],
                partitions,
                f"{r['rss_before_mb']:.0f}",
                f"{r['driver_rss_mb']:.0f}",
                f"{r['traced_mb']:.1f}",
                f"{r['workers_rss_mb']:.0f}",
                f"{r['sampled']:,}",
                f"{r['s']:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main_scale(argv: list[str]) -> int:
    """``--scale [--old DIR] [--sizes 20000,80000]``: print the distributed-build numbers (results.md untouched)."""
    old = argv[argv.index("--old") + 1] if "--old" in argv else None
    sizes = [
        int(x) for x in (argv[argv.index("--sizes") + 1] if "--sizes" in argv else "20000,80000").split(",")
    ]
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 2
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (shared machine)")
    pool = bench_decontam_pool(sizes[-1], workers)
    print(
        md_table(
            [
                "decontamination (generated docs)",
                "docs",
                "processes",
                "wall s",
                "docs per CPU-s",
                "vs before",
            ],
            pool,
        )
    )
    if os.path.isdir(CORPUS):
        _, dec = bench_decontam(sample_docs())
        print(
            md_table(["decontamination, one core", "docs", "contaminated", "s", "docs/s", "vs before"], dec)
        )
    if "--no-build" in argv:
        return 0
    rows = bench_build_scale(sizes, old, workers)
    print(
        md_table(
            [
                "docs",
                "build",
                "cold s",
                "cold driver peak MiB",
                "warm s",
                "warm driver peak MiB",
                "rows",
                "shards",
            ],
            rows,
        )
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def main() -> int:
    if not os.path.isdir(CORPUS):
        print(f"bench_mixtures: {CORPUS} not found; skipped")
        return 0
    docs = sample_docs()
    tok = bench_tokens(docs)
    index_row, dec = bench_decontam(docs)
    md = [
        f"## Mixtures: token counting and decontamination ({machine()})",
        "",
        f"{len(docs):,} documents of ~2,000 characters from ../shared/corpus books + commoncrawl/text.",
        "",
        md_table(["Llama-3 token count", "docs", "chars", "tokens", "s", "tokens/s"], tok),
        "",
        md_table(["13-gram hashes (4 shipped benchmarks)", "load s"], index_row),
        "",
        f"Decontamination, one process (one core), best of 5 interleaved rounds, same documents; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when it finished (a machine shared with other jobs):",
        "",
        md_table(["decontamination", "docs", "contaminated", "s", "docs/s", "vs before"], dec),
        "",
        f"peak RSS {peak_rss_mb()} MiB",
    ]
    write_section("mixtures", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    if "--driver" in sys.argv:
        sizes = sys.argv[sys.argv.index("--sizes") + 1] if "--sizes" in sys.argv else "200000,1600000"
        table = bench_driver_memory([int(x) for x in sizes.split(",")])
        print(
            md_table(
                [
                    "docs",
                    "candidates after the cut",
                    "docs files",
                    "partitions",
                    "driver RSS at start MiB",
                    "driver peak RSS MiB",
                    "driver traced peak MiB",
                    "largest worker RSS MiB",
                    "sampled",
                    "s",
                ],
                table,
            )
        )
        sys.exit(0)
    sys.exit(main_scale(sys.argv[1:]) if "--scale" in sys.argv else main())
