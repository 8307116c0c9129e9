"""Call one ``winnow`` command in-process, as the console script does (``command("dedup")(argv)``)."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.cli import main


def command(name: str) -> Callable[[list[str]], int]:
    """``winnow <name> argv...``: returns its exit status."""
    return lambda argv: main([name, *argv])
