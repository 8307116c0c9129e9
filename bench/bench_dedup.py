"""Dedup benchmark: Winnow MinHash (end to end, 2 worker processes) vs datasketch MinHashLSH in memory,
datatrove's 4-stage MinHash (LocalPipelineExecutor, 2 workers) and rensa's Rust MinHash + LSH, on the same
documents.

Documents are runs of real paragraphs from ../shared/corpus with 20% planted near-duplicates at known edit rates
(dedup.evalset).  Recall is over planted pairs whose exact Jaccard is >= 0.85 (the truth is computed once per input,
a chunk of pairs at a time, and cached beside it).  Each system runs in its own subprocess; its memory is sampled
over that process and all its descendants (worker processes included) while the system runs, and the recall is
computed afterwards, so the harness's own data never counts.

    python bench/bench_dedup.py [--systems winnow,datasketch,datatrove] [--note TEXT] [SIZE ...]
    python bench/bench_dedup.py --rensa [N] [NOTE]     rensa vs Winnow vs datasketch at N (20,000) documents

Without ``--systems``, Winnow runs at every size and the references at 20,000 documents or fewer; with it, the named
systems run at every size.  Rows of (system, size) not re-measured are kept from the previous table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import CORPUS, RESULTS, WORK, TreeMemory, machine, md_table, write_section  # noqa: E402
from bench.dedup_systems import run_datasketch, run_datatrove, run_rensa, run_winnow  # noqa: E402

SYSTEMS = ("winnow", "datasketch", "datatrove")
HEADERS = [
    "system",
    "docs",
    "wall s",
    "docs/s",
    "peak memory MiB (PSS, all processes)",
    "largest process MiB (peak RSS)",
    "recall (planted J>=0.85)",
    "pairs J>=0.85",
    "measured",
]


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


def truth_path(n: int) -> str:
    return os.path.join(WORK, "dedup", f"truth-{n}.parquet")


def planted_truth(folder: str, n: int, chunk: int = 20_000) -> str:
    """``(a, b, jaccard)`` of every planted pair, cached in ``truth-<n>.parquet`` beside the inputs.

    Only the texts of one chunk of pairs are in memory at a time (read by row number from each input file).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.corpus import read_rows
    from dedup.text import jaccard, shingle_hashes

    path = truth_path(n)
    if os.path.exists(path):
        return path
    files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
    index = []
    for i, p in enumerate(files):
        t = pq.read_table(p, columns=["id", "dup_of"])
        index.append(
            t.append_column("file", pa.array(np.full(t.num_rows, i))).append_column(
                "row", pa.array(np.arange(t.num_rows))
            )
        )
    docs = pa.concat_tables(index)
    planted = docs.filter(docs.column("dup_of").is_valid())
    src = docs.select(["id", "file", "row"]).rename_columns(["dup_of", "src_file", "src_row"])
    pairs = planted.join(src, "dup_of").sort_by("id")
    a_f, a_r = pairs.column("file").to_numpy(), pairs.column("row").to_numpy()
    b_f, b_r = pairs.column("src_file").to_numpy(), pairs.column("src_row").to_numpy()
    jac = np.empty(pairs.num_rows)
    for lo in range(0, pairs.num_rows, chunk):
        sl = slice(lo, lo + chunk)
        need = np.unique(np.concatenate([a_f[sl] << 32 | a_r[sl], b_f[sl] << 32 | b_r[sl]]))
        sets = {}
        for f in np.unique(need >> 32).tolist():
            rows = need[(need >> 32) == f] & 0xFFFFFFFF
            texts = read_rows(files[f], rows, ["text"]).column("text").to_pylist()
            for k in range(0, len(texts), 500):
                h, off = shingle_hashes(texts[k : k + 500], 5)
                for r, x, y in zip(
                    rows[k : k + 500].tolist(), off[:-1].tolist(), off[1:].tolist(), strict=True
                ):
                    sets[f << 32 | r] = np.unique(h[x:y])
        for i in range(lo, min(lo + chunk, pairs.num_rows)):
            jac[i] = jaccard(sets[int(a_f[i]) << 32 | int(a_r[i])], sets[int(b_f[i]) << 32 | int(b_r[i])])
    out = pa.table({"a": pairs.column("id"), "b": pairs.column("dup_of"), "jaccard": jac})
    pq.write_table(out, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def child(kind: str, n: int) -> None:
    folder = make_input(n)
    with TreeMemory() as mem:
        if kind in ("winnow", "winnow-1"):
            r = run_winnow(
                folder, os.path.join(WORK, "dedup", f"out-{n}"), workers=1 if kind == "winnow-1" else 2
            )
        elif kind == "rensa":
            r = run_rensa(folder)
        elif kind == "datatrove":
            r = run_datatrove(folder, os.path.join(WORK, "dedup", f"dt-{n}"))
        else:
            r = run_datasketch(folder)
    r["cpu_s"] = mem.cpu_s  # load-independent: CPU seconds of the system's processes
    # evaluation after the measurement: the truth (ids and Jaccard of planted pairs) is read from its cache
    import pyarrow.parquet as pq

    truth = pq.read_table(planted_truth(folder, n))
    hi = [
        (a, b)
        for a, b, j in zip(*(truth.column(c).to_pylist() for c in ("a", "b", "jaccard")), strict=True)
        if j >= 0.85
    ]
    c = r["cluster"]
    if kind != "datasketch":  # cluster ids
        found = sum(1 for a, b in hi if a in c and c.get(a) == c.get(b))
    else:  # datasketch: a doc is linked to an earlier similar one
        found = sum(1 for a, b in hi if c.get(a) == b or c.get(b) == a or (a in c and c.get(a) == c.get(b)))
    # documents each system puts beside another: cluster members (datasketch: both ends of its links)
    linked = sorted(set(c) | (set(c.values()) if kind == "datasketch" else set()))
    with open(os.path.join(WORK, "dedup", f"linked-{kind}-{n}.json"), "w", encoding="utf-8") as f:
        json.dump(linked, f)
    r.pop("cluster")
    r.update(
        {
            "recall_j085": round(found / len(hi), 4) if hi else None,
            "pairs_j085": len(hi),
            "planted": truth.num_rows,
            "pss_mb": mem.pss_mb,
            "max_rss_mb": mem.max_rss_mb,
        }
    )
    print(json.dumps(r, default=str))


def previous_rows() -> dict[tuple[str, str], list[str]]:
    """Rows of the current dedup table in results.md (same columns only), keyed by (system, docs)."""
    if not os.path.exists(RESULTS):
        return {}
    text = open(RESULTS, encoding="utf-8").read()
    m = re.search(r"<!-- dedup:start -->(.*?)<!-- dedup:end -->", text, re.S)
    lines = [ln for ln in (m.group(1).splitlines() if m else []) if ln.startswith("|")]
    if not lines or [c.strip() for c in lines[0].strip("|").split("|")] != HEADERS:
        return {}
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return {(r[0], r[1]): r for r in rows if len(r) == len(HEADERS)}


def write_table(rows: dict[tuple[str, str], list[str]], note: str) -> None:
    order = sorted(
        rows, key=lambda k: (int(k[1].replace(",", "")), SYSTEMS.index(k[0]) if k[0] in SYSTEMS else 9)
    )
    md = (
        "## Dedup (MinHash near-duplicates)\n\n"
        + machine()
        + (f"; {note}" if note else "")
        + ". Memory is sampled every 0.1 s over the system's process and all its workers while it runs (the"
        " recall evaluation comes after); PSS counts a page shared between processes once. (Earlier versions of"
        " this table showed the benchmark child's own peak RSS instead: it included the evaluation's load of every"
        " text, 3.3 GB at 400k, and missed the worker processes.)  Each system at its defaults, 5-word shingles:"
        " Winnow 18 bands x 6 rows (108 permutations) with candidate pairs checked by exact Jaccard >= 0.8;"
        " datatrove 14 x 8; datasketch MinHashLSH(threshold=0.8, num_perm=112).  Winnow rows measured before"
        " 2026-11-22's third session used 14 x 8 (recall 0.9994 at 100k, 0.9993 at 400k).\n\n"
        + md_table(HEADERS, [rows[k] for k in order])
    )
    write_section("dedup", md)


def main(sizes: list[int], systems: list[str] | None = None, note: str = "") -> None:
    explicit = systems is not None
    rows = previous_rows()
    for n in sizes:
        folder = make_input(n)
        planted_truth(folder, n)
        for kind in systems or SYSTEMS:
            if not explicit and kind != "winnow" and n > 20_000:
                continue  # by default the references run at the smallest size only (datatrove: ~86 s at 20k)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True
            )
            if proc.returncode:
                sys.exit(f"{kind} at {n:,} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[(kind, f"{n:,}")] = [
                kind,
                f"{n:,}",
                f"{r['seconds']:.1f}",
                f"{r['docs'] / r['seconds']:,.0f}",
                f"{r['pss_mb']:.0f}",
                f"{r['max_rss_mb']:.0f}",
                str(r["recall_j085"]),
                str(r["pairs_j085"]),
                time.strftime("%Y-%m-%d"),
            ]
            print(json.dumps(r, default=str), flush=True)
            write_table(rows, note)  # after every row: a long run stopped half-way keeps what it measured
    if not explicit and min(sizes) <= 20_000:  # `make bench`: the rensa comparison at the smallest size too
        main_rensa(min(sizes), note or "shared machine")


RENSA_SYSTEMS = {"rensa": 1, "winnow-1": 1, "winnow": 2, "datasketch": 1}  # system: processes (cores) it uses


def main_rensa(n: int, note: str) -> None:
    """rensa vs Winnow (1 and 2 workers) vs datasketch on the same ``n`` documents: docs/s per core, recall and
    agreement of the documents each puts in a cluster (section ``dedup-rensa``)."""
    import pyarrow.parquet as pq

    folder = make_input(n)
    truth = pq.read_table(planted_truth(folder, n))
    planted = set(truth.column("a").to_pylist()) | set(truth.column("b").to_pylist())
    results, linked = {}, {}
    for kind in RENSA_SYSTEMS:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True
        )
        if proc.returncode:
            sys.exit(f"{kind} at {n:,} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(os.path.join(WORK, "dedup", f"linked-{kind}-{n}.json"), encoding="utf-8") as f:
            linked[kind] = set(json.load(f))
        print(json.dumps(results[kind], default=str), file=sys.stderr, flush=True)
    rows = []
    for kind, cores in RENSA_SYSTEMS.items():
        r, mine, ref = results[kind], linked[kind], linked["winnow"]
        rate = r["docs"] / r["seconds"]
        rows.append(
            [
                kind if kind != "winnow-1" else "winnow (1 worker)",
                cores,
                f"{r['seconds']:.1f}",
                f"{rate:,.0f}",
                f"{rate / cores:,.0f}",
                f"{r['cpu_s']:.1f}",
                f"{r['docs'] / r['cpu_s']:,.0f}",
                f"{r['max_rss_mb']:.0f}",
                r["recall_j085"],
                f"{len(mine):,}",
                f"{len(mine & planted) / max(1, len(mine)):.4f}",
                f"{len(mine & ref) / max(1, len(mine | ref)):.4f}",
            ]
        )
    md = (
        f"## Dedup: rensa vs Winnow vs datasketch ({n:,} documents)\n\n{machine()}; {note}. Same documents and "
        "5-word shingles as the Dedup table. rensa 0.5.0 end to end in one process as its README deduplicates "
        "(`RMinHash` 112 permutations, `RMinHashLSH` 14 x 8, a candidate counts when rensa's *estimated* Jaccard is "
        ">= 0.8: no exact verification), Python tokenisation and shingling included; Winnow at its defaults (18 x 6, "
        "candidate pairs verified by exact Jaccard >= 0.8, process executor); datasketch MinHashLSH(0.8, 112). "
        "*docs/s per core* divides by the processes the system runs (Winnow's driver mostly waits); *CPU s* is user + "
        "system time of every process of the system (sampled from /proc every 0.1 s: other users' load does "
        "not count), and "
        "*docs per CPU s* the rate per core that a quiet machine would give. *linked*: "
        "documents put in a cluster with another; *in planted pairs*: the share of those that belong to a planted "
        "pair (the rest are false positives or chance near-duplicates among the base documents); *agreement*: "
        "Jaccard of the linked sets with Winnow's (2 workers).\n\n"
        + md_table(
            [
                "system",
                "cores",
                "wall s",
                "docs/s",
                "docs/s per core",
                "CPU s",
                "docs per CPU s",
                "largest process MiB",
                "recall (planted J>=0.85)",
                "linked",
                "in planted pairs",
                "agreement with winnow",
            ],
            rows,
        )
        + f"\n\nPlanted pairs at J >= 0.85: {results['winnow']['pairs_j085']:,} of {truth.num_rows:,} planted.\n"
    )
    write_section("dedup-rensa", md)
    print(md)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--rensa":  # --rensa [N] [NOTE]
        main_rensa(
            int(sys.argv[2]) if len(sys.argv) > 2 else 20_000, " ".join(sys.argv[3:]) or "shared machine"
        )
    else:
        ap = argparse.ArgumentParser(description="MinHash dedup: Winnow vs datasketch vs datatrove")
        ap.add_argument("sizes", nargs="*", type=int, help="documents per run (default 20000 100000)")
        ap.add_argument("--systems", help=f"comma-separated, of {','.join(SYSTEMS)}; runs them at every size")
        ap.add_argument("--note", default="", help="added to the machine line (e.g. 'shared machine')")
        a = ap.parse_args()
        chosen = a.systems.split(",") if a.systems else None
        if chosen and set(chosen) - set(SYSTEMS):
            ap.error(f"unknown system(s): {sorted(set(chosen) - set(SYSTEMS))}")
        main(a.sizes or [20_000, 100_000], chosen, a.note)
