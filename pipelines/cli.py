"""The ``winnow`` command: one tree of subcommands, one logging set-up.

Each package registers its own commands: a module with ``add_parser(subparsers)`` that calls
:func:`pipelines.core.commands.add_command` (help line, arguments, ``handler(args) -> int``).  Adding a command is
one edit: a new ``add_command`` call in your package's ``add_parser``, or a new module in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipelines.core import storage
from pipelines.core.commands import show_defaults
from pipelines.core.logs import setup_logging

#: modules whose ``add_parser(subparsers)`` registers commands, in the order ``winnow -h`` lists them
COMMAND_MODULES = (
    "pipelines.commands",  # run, steps, query
    "dedup.cli",  # dedup, dedup lines
    "classifiers.cli",  # models train | eval | lid-eval, score
    "mixtures.cli",  # mixture
    "pipelines.report.cli",  # report
    "mixtures.benchmarks",  # benchmarks add | list
    "pipelines.cron",  # cron
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="winnow",
        description="Winnow: pretraining data curation (six sources -> scored Parquet -> stage mixtures)",
        epilog="`winnow COMMAND -h` shows a command's options and their defaults.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    show_defaults(parser)
    return parser


def _uri_argument(args: argparse.Namespace) -> str | None:
    for value in vars(args).values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and storage.is_uri(v):
                return v
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    if args.local_only and (uri := _uri_argument(args)):
        print(
            f"winnow: `winnow {args.command}` reads and writes local paths only, not {uri}. Object storage "
            "(s3://, gs://) works for `winnow run`, `query`, `mixture`, `report` and `cron`; run this command "
            "on a local or shared path (or a FUSE mount of the bucket).",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.handler(args) or 0)
    except Exception as exc:
        from pipelines.core.locks import LockedError
        from pipelines.runner import InputsFailed

        if isinstance(exc, LockedError | FileNotFoundError | ValueError):
            print(f"winnow: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, InputsFailed):  # the rest of the run completed; a rerun retries these
            print(f"winnow: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
