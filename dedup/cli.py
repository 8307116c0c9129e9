"""``winnow dedup``: standalone dedup of a folder of Parquet documents (``make dedup INPUT=... OUTPUT=...``).

    winnow dedup lines --input DOCS --counts DIR [--bucket-docs N] [--normalization ccnet|datatrove]
                       [--partition-by lang]            (line counts for the `line_dedup` step's mode: counts)
    winnow dedup --input DIR --output OUT [--kind minhash|exact|md5] [--threshold 0.8] [--bands 14 --rows 8]
                 [--ngram 5] [--no-verify] [--score-column COL] [--reference DIR ...] [--executor auto|local|process|ray]

Writes survivors to ``OUT/docs/``, clusters to ``OUT/duplicates/`` (id, cluster_id, kept, ...) and ``OUT/dedup.json``;
``winnow query --output OUT --sql "SELECT * FROM duplicates"`` reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pipelines.core.commands import add_command
from pipelines.core.executor import get_executor
from pipelines.core.layout import write_json_atomic
from pipelines.core.locks import run_lock


def add_parser(sub: Any) -> None:
    p = add_command(
        sub, "dedup", "standalone dedup of a folder of Parquet documents", run_dedup, local_only=True
    )
    p.add_argument(
        "--input", action="append", default=None, help="Parquet file, folder or glob (repeatable; required)"
    )
    p.add_argument("--output", default=None, help="output folder (required)")
    p.add_argument("--kind", choices=["minhash", "exact", "md5"], default="minhash")
    p.add_argument(
        "--bands", type=int, default=None, help="with --rows; default 18x6, 0 = choose from threshold"
    )
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--ngram", type=int, default=5)
    p.add_argument("--no-verify", action="store_true", help="skip the exact-Jaccard check of candidate pairs")
    p.add_argument(
        "--score-column",
        default=None,
        help="survivor: best value of this column (--score-order), then the longest text, then the smallest id",
    )
    p.add_argument("--score-order", choices=["max", "min"], default="max", help="which score value is best")
    p.add_argument(
        "--reference", action="append", default=[], help="Parquet docs matched against, never removed"
    )
    p.add_argument("--partitions", type=int, default=16, help="R: hash partitions of every shuffle")
    p.add_argument("--tasks", type=int, default=16, help="M: signature tasks over groups of input files")
    p.add_argument(
        "--executor",
        choices=["auto", "local", "process", "ray"],
        default="auto",
        help="who runs the passes (auto: Ray when RAY_ADDRESS is set, else a process pool)",
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    lines_sub = p.add_subparsers(dest="dedup_command", metavar="[lines]")
    lines = add_command(
        lines_sub, "lines", "the counting pass of two-pass line dedup", run_lines, local_only=True
    )
    lines.add_argument("--input", required=True, action="append", help="Parquet docs (id, text); repeatable")
    lines.add_argument("--counts", required=True, help="folder for the line counts (the step's counts_dir)")
    lines.add_argument(
        "--bucket-docs",
        type=int,
        default=30_000_000,
        help="documents per bucket (LLaMA-3); 0: one bucket (CCNet)",
    )
    lines.add_argument("--normalization", choices=["ccnet", "datatrove"], default="ccnet")
    lines.add_argument(
        "--partitions", type=int, default=16, help="hash partitions, at least (more for big corpora)"
    )
    lines.add_argument(
        "--partition-docs", type=int, default=1_000_000, help="one more partition per this many documents"
    )
    lines.add_argument(
        "--partition-by",
        default=None,
        metavar="COLUMN",
        help="count lines apart per value of this column (lang: a line counts only with pages of its language); "
        "the step that reads these counts then needs the column in its batches",
    )
    lines.add_argument("--executor", choices=["local", "process", "ray"], default="process")
    lines.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def run_lines(args: argparse.Namespace) -> int:
    """``winnow dedup lines --input DOCS --counts DIR``: count every line per bucket of documents (the first half
    of line dedup run as two runs: a later run's ``line_dedup`` step with ``mode: counts`` and ``counts_dir: DIR``
    drops the lines counted more than its ``max_count`` times).  The CommonCrawl recipe's default is the
    ``line_dedup`` corpus stage instead, which counts and rewrites in one run."""
    from dedup.corpus import build_inputs
    from dedup.line_stage import LineDedupConfig, count_lines

    try:
        cfg = LineDedupConfig(
            bucket_docs=args.bucket_docs,
            normalization=args.normalization,
            partitions=args.partitions,
            partition_docs=args.partition_docs,
            partition_by=args.partition_by,
            executor=args.executor,
            workers=args.workers,
        )
        meta = count_lines(build_inputs(args.input), args.counts, cfg, hits=False)
    except (FileNotFoundError, ValueError) as exc:
        print(f"winnow dedup lines: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta))
    return 0


def run_dedup(args: argparse.Namespace) -> int:
    from dedup.minhash import MinHashConfig
    from dedup.removal import write_survivors
    from dedup.workflow import ExactConfig, find_exact_duplicates, find_near_duplicates

    if not args.input or not args.output:
        print(
            "winnow dedup: --input and --output are required (or `winnow dedup lines ...`)", file=sys.stderr
        )
        return 2
    out = os.path.abspath(args.output)
    try:
        with run_lock(out):
            work_root = os.path.join(out, "_work")
            executor = get_executor(args.executor, args.workers)
            common = {
                "score_column": args.score_column,
                "score_order": args.score_order,
                "references": args.reference,
                "partitions": args.partitions,
                "tasks": args.tasks,
                "executor": args.executor,
                "workers": args.workers,
            }
            if args.kind == "minhash":
                cfg = MinHashConfig(
                    ngram=args.ngram, threshold=args.threshold, verify=not args.no_verify, **common
                )
                if args.bands is not None or args.rows is not None:
                    cfg = MinHashConfig(**{**cfg.__dict__, "bands": args.bands or 0, "rows": args.rows or 0})
                res = find_near_duplicates(args.input, work_root, cfg, executor=executor)
            else:
                ecfg = ExactConfig(mode="md5" if args.kind == "md5" else "normalized", **common)
                res = find_exact_duplicates(args.input, work_root, ecfg, executor=executor)
            summary = {**res.stats, **write_survivors(res, out, executor)}
            write_json_atomic(os.path.join(out, "dedup.json"), summary)
    except (FileNotFoundError, ValueError) as exc:
        print(f"winnow dedup: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "work"}, indent=1))
    print(f"survivors: {os.path.join(out, 'docs')}   clusters: {os.path.join(out, 'duplicates')}")
    return 0
