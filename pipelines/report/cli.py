"""``winnow report``: the HTML report of a whole output tree (``OUTPUT/report/index.html``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines.core.commands import add_command


def add_parser(sub: Any) -> None:
    r = add_command(sub, "report", "HTML report of an output tree (OUTPUT/report/index.html)", run_report)
    r.add_argument("--output", default="output", help="the curated output tree (a path or an s3:// / gs:// URI)")


def run_report(args: argparse.Namespace) -> int:
    from pipelines.report.build import build_report

    try:
        path = build_report(args.output)
    except FileNotFoundError as exc:
        print(f"winnow report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
