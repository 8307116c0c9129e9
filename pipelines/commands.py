"""``winnow run``, ``winnow steps`` and ``winnow query`` (``make pipeline SOURCE=commoncrawl`` is ``winnow run``)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from pipelines.core import storage
from pipelines.core.commands import add_command
from pipelines.sources.registry import SOURCES, build_recipe, load_config, resolve_path


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
            info = ", ".join(
                f"{k} {v:,}" for k, v in info.items() if isinstance(v, int) and not isinstance(v, bool)
            )
        lines.append(f"  {name}: {info}")
    if s["errors"]:
        lines.append(f"  {len(s['errors'])} input error(s), first: {s['errors'][0]}")
    return "\n".join(lines)


def run_inputs(source: str, given: str | None, config: dict[str, Any]) -> str:
    """INPUT: the one given, else the config's ``input:``; a default that does not exist says ``--input`` is needed
    (the shipped configs point at the repository's test fixtures, which an installed package does not contain)."""
    if given:
        return given
    default = config.get("input") or ""
    if not default:
        raise ValueError(f"give --input: {source}'s config names no default input")
    spec = resolve_path(default)
    if not storage.is_uri(spec) and not any(c in spec for c in "*?[") and not os.path.exists(spec):
        raise FileNotFoundError(
            f"give --input (a file, folder or glob of {source} inputs): the config's default input {default!r} "
            "does not exist here (it is the repository's test fixtures, not part of an installed package)"
        )
    return spec


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.source, args.config)
    recipe = build_recipe(args.source, config)
    inputs = run_inputs(args.source, args.input, config)
    if args.dry_run:
        from pipelines.plan import describe_plan

        found = sorted(set(recipe.reader.discover(inputs)))
        print(describe_plan(recipe, found, args.output))
        return 0
    problems = recipe.environment_problems()
    if problems:
        raise FileNotFoundError("cannot run " + args.source + ":\n  " + "\n  ".join(problems))
    from pipelines.runner import run_recipe

    result = run_recipe(
        recipe,
        inputs,
        args.output,
        executor=args.executor,
        wait_for_lock=args.wait,
        progress=not args.no_progress,
    )
    print(format_summary(result))
    print(f"  output: {storage.join(storage.absolute(args.output), args.source)}")
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    from pipelines.plan import catalogue, format_catalogue

    rows = catalogue([args.source] if args.source else None)
    print(json.dumps(rows, indent=1, default=str) if args.json else format_catalogue(rows))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from pipelines.query import TABLE_LIMIT, format_rows, query_rows

    limit = args.limit if args.limit is not None else (TABLE_LIMIT if args.format == "table" else None)
    cols, rows, total = query_rows(args.output, args.sql, limit)
    print(format_rows(cols, rows, args.format, total))
    return 0


def add_parser(sub: Any) -> None:
    run = add_command(sub, "run", "run a source's pipeline over its inputs", cmd_run)
    run.add_argument("--source", required=True, choices=SOURCES, help="which recipe")
    run.add_argument("--input", default=None, help="file, folder or glob (default: the config's `input:`)")
    run.add_argument("--output", default="output", help="output root (local path, s3:// or gs://)")
    run.add_argument("--config", default=None, help="a copy of pipelines/sources/configs/<source>.yaml")
    run.add_argument(
        "--executor",
        choices=["ray", "local"],
        default=os.environ.get("WINNOW_EXECUTOR", "ray"),
        help="where inputs run (env WINNOW_EXECUTOR)",
    )
    run.add_argument("--wait", action="store_true", help="wait for another run on OUTPUT instead of failing")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan (inputs, steps, stages); run nothing"
    )

    steps = add_command(
        sub, "steps", "list every step of every source with its settings and defaults", cmd_steps
    )
    steps.add_argument("--source", default=None, choices=SOURCES, help="only this source (default: all)")
    steps.add_argument("--json", action="store_true", help="JSON instead of text")

    q = add_command(sub, "query", "DuckDB SQL over the output (views docs, rejected, stats, ...)", cmd_query)
    q.add_argument("--output", default="output", help="output root (local path, s3:// or gs://)")
    q.add_argument("--sql", required=True, help="the query")
    q.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table, csv (with a header) or json (one object per line)",
    )
    q.add_argument(
        "--limit",
        type=int,
        default=None,
        help="rows to print (default: 50 for a table, with a note of how many more; all for csv/json)",
    )
