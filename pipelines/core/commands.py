"""How a package adds a ``winnow`` command: ``add_command(subparsers, name, help, handler)`` in its ``add_parser``.

Every command gets the same treatment: its ``-h`` shows each option's default, ``-v`` works after the command name,
and ``handler(args) -> int`` is what ``winnow`` calls.  ``local_only`` commands refuse ``s3://``/``gs://`` paths with
one message (their code is os/glob based).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: Any,
    name: str,
    help: str,
    handler: Handler | None = None,
    *,
    local_only: bool = False,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand parser; ``handler`` may be None for a command that only groups subcommands (``models``)."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=kwargs.pop("description", help),
        **kwargs,
    )
    # SUPPRESS: an absent -v here must not reset a -v given before the command name
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log INFO messages"
    )
    if handler is not None:
        parser.set_defaults(handler=handler, local_only=local_only)
    return parser


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to the help of every option with a default, in ``parser`` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                show_defaults(sub)
            continue
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS or default == []:
            continue
        if not action.option_strings:
            continue
        if "%(default)" not in (action.help or ""):
            action.help = f"{action.help} (default: %(default)s)" if action.help else "default: %(default)s"


def add_subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    """Subcommands of a command (``winnow models train``): required, listed in the parent's ``-h``."""
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
