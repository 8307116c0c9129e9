"""Command line: ``winnow run|query`` (and the commands other packages register).

``make pipeline SOURCE=commoncrawl`` is ``winnow run --source commoncrawl``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from pipelines.core import storage
from pipelines.sources.registry import available_sources, build_recipe, load_config, resolve_path

log = logging.getLogger("winnow")

#: extra subcommands: name -> "module:function" taking argv (implemented by dedup/, classifiers/, mixtures/ ...)
EXTRA_COMMANDS = {
    "dedup": "dedup.cli:main",
    "models": "classifiers.cli:main",
    "score": "classifiers.cli:score_main",
    "mixture": "mixtures.cli:main",
    "report": "mixtures.report:main",
    "bench": "bench.run:main",
    "cron": "pipelines.cron:main",
    "benchmarks": "mixtures.benchmarks:main",
}


#: commands whose paths must be local (their code is os/glob based); ``run`` and ``query`` take s3:// and gs://
LOCAL_ONLY = ("dedup", "mixture", "report", "cron")


def _uri_argument(args: list[str]) -> str | None:
    for a in args:
        value = a.split("=", 1)[1] if a.startswith("--") and "=" in a else a
        if storage.is_uri(value):
            return value
    return None


def format_summary(result: Any) -> str:
    s = result.summary
    lines = [
        f"{result.source}: {result.inputs} input(s), {result.processed} processed, "
        f"{result.already_done} already done; {result.seconds:.1f} s",
        f"  read {s['read']:,}   kept {s['kept']:,}   rejected {s['rejected']:,}",
    ]
    if s["rejected_by_reason"]:
        lines.append("  rejected by reason:")
        lines += [f"    {k:<40} {v:>8,}" for k, v in s["rejected_by_reason"].items()]
    if s["skipped"]:
        lines.append("  records skipped (not documents):")
        lines += [f"    {k:<40} {v:>8,}" for k, v in s["skipped"].items()]
    for name, info in (s.get("corpus_stages") or {}).items():
        if isinstance(info, dict):  # the scalar counts only; the full result is in summary.json
            info = ", ".join(f"{k} {v:,}" for k, v in info.items() if isinstance(v, int) and not isinstance(v, bool))
        lines.append(f"  {name}: {info}")
    if s["errors"]:
        lines.append(f"  {len(s['errors'])} input error(s), first: {s['errors'][0]}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.runner import run_recipe

    config = load_config(args.source, args.config)
    recipe = build_recipe(args.source, config)
    inputs = args.input or resolve_path(config.get("input") or "")
    if not inputs:
        raise SystemExit(f"no INPUT given and {args.source}'s config names no default input")
    result = run_recipe(recipe, inputs, args.output, executor=args.executor, wait_for_lock=args.wait,
                        progress=not args.no_progress)
    print(format_summary(result))
    print(f"  output: {storage.join(storage.absolute(args.output), args.source)}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from pipelines.query import TABLE_LIMIT, format_rows, query_rows

    limit = args.limit if args.limit is not None else (TABLE_LIMIT if args.format == "table" else None)
    cols, rows, total = query_rows(args.output, args.sql, limit)
    print(format_rows(cols, rows, args.format, total))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LOCAL_ONLY and (uri := _uri_argument(argv[1:])):
        print(f"winnow: `winnow {argv[0]}` reads and writes local paths only, not {uri}. Object storage (s3://, "
              "gs://) works for `winnow run` and `winnow query`; run this command on a local or shared path "
              "(or a FUSE mount of the bucket).", file=sys.stderr)
        return 2
    if argv and argv[0] in EXTRA_COMMANDS:
        module, func = EXTRA_COMMANDS[argv[0]].split(":")
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="winnow", description="Winnow: pretraining data curation")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a source's pipeline")
    run.add_argument("--source", required=True, help=f"one of {', '.join(available_sources())}")
    run.add_argument("--input", default=None, help="file, folder or glob (default: the config's input)")
    run.add_argument("--output", default="output")
    run.add_argument("--config", default=None, help="a copy of pipelines/sources/configs/<source>.yaml")
    run.add_argument("--executor", choices=["ray", "local"], default=os.environ.get("WINNOW_EXECUTOR", "ray"))
    run.add_argument("--wait", action="store_true", help="wait for another run on OUTPUT instead of failing")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)
    q = sub.add_parser("query", help="DuckDB SQL over the output (views docs, rejected, stats, ...)")
    q.add_argument("--output", default="output")
    q.add_argument("--sql", required=True)
    q.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (default), csv (with a header) or json (one object per line)")
    q.add_argument("--limit", type=int, default=None,
                   help="rows to print (default: 50 for a table, with a note of how many more; all for csv/json)")
    q.set_defaults(func=cmd_query)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Exception as exc:
        from pipelines.core.locks import LockedError

        if isinstance(exc, LockedError | FileNotFoundError | ValueError):
            print(f"winnow: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
