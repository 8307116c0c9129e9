"""A task that dies part-way, as a killed worker or a lost node would: for resume tests of multi-task passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def dying_after(
    real: Callable[[Any], Any], n: int, error: BaseException | None = None
) -> Callable[[Any], Any]:
    """``real``, except that every call after the first ``n`` raises ``error`` (default: a KeyboardInterrupt)."""
    calls = 0

    def task(args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > n:
            raise error if error is not None else KeyboardInterrupt("killed")
        return real(args)

    return task
