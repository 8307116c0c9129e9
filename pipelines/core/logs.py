"""The one logging set-up: entry points (the ``winnow`` CLI, a Ray worker) call :func:`setup_logging` once; library
code only calls ``logging.getLogger(__name__)``.  ``winnow cron`` adds its log file with :func:`log_to_file`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _ConsoleHandler(logging.StreamHandler):
    """stderr handler installed by :func:`setup_logging` (a class of its own, so a second call finds it)."""


def setup_logging(verbose: bool = False) -> None:
    """stderr gets WARNING and above, or INFO with ``-v``; idempotent (a second call only changes the level)."""
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    console = next((h for h in root.handlers if isinstance(h, _ConsoleHandler)), None)
    if console is None:
        console = _ConsoleHandler()
        console.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(console)
    console.setLevel(level)
    root.setLevel(min(level, root.level) if root.level else level)


@contextmanager
def log_to_file(path: str, level: int = logging.INFO) -> Iterator[None]:
    """Append the log to ``path`` at ``level`` for the block (stderr keeps its own level)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # a file name that is not valid UTF-8 is logged as \udcXX escapes, not dropped with a "Logging error"
    handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(min(level, before) if before else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        handler.close()
