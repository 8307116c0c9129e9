"""Which exceptions are the environment's fault and which are the input's.

An input whose reading or processing raises a *data* error (a corrupt gzip, bad XML, an undecodable byte, a parser's
ValueError) gets a recorded rejection or skip with the error's type, and is marked done: rerunning would fail the same
way.  An *environment* error (a missing module, no memory, permission denied, an I/O error, a full disk, a failing
object store) says nothing about the input: the input fails without a marker so that a rerun, once the problem is
fixed, reads it again.  Recording it as a rejection would turn a passing problem into permanent loss.
"""

from __future__ import annotations

import errno

#: errno values of an OSError that describe the machine, not the bytes of the input
ENVIRONMENT_ERRNOS: frozenset[int] = frozenset(
    getattr(errno, name)
    for name in (
        "EIO ENOSPC EDQUOT EACCES EPERM ENOMEM ESTALE EROFS EMFILE ENFILE ENXIO ENODEV EAGAIN EBUSY ETIMEDOUT "
        "ECONNRESET ECONNREFUSED ECONNABORTED EHOSTUNREACH ENETDOWN ENETUNREACH ENOLINK ECOMM EREMOTEIO ENOTCONN "
        "EPIPE EINTR"
    ).split()
    if hasattr(errno, name)
)


def is_environment_error(exc: BaseException) -> bool:
    """True when ``exc`` (or the exception it was raised ``from``) is an environment error: see the module doc.

    Some data errors are OSError subclasses (``gzip.BadGzipFile``, bz2's "Invalid data stream" has no errno): an
    OSError counts as environment only by its errno, so those stay data errors.  A Ray task error is judged by the
    exception it carries; any other Ray error (a dead actor or worker) is the environment's.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _environment(current):
            return True
        current = current.__cause__ or _ray_cause(current)
    return False


def _environment(exc: BaseException) -> bool:
    if isinstance(exc, ImportError | MemoryError | PermissionError):
        return True
    mro = type(exc).__mro__
    if any(c.__name__ == "StorageError" for c in mro):  # pipelines.storage: the object store failed
        return True
    names = {c.__name__ for c in mro}
    # torch.cuda.OutOfMemoryError, or torch's plain RuntimeError for it: the device's fault (only the message's
    # start is read, so text of a hostile input quoted in a message cannot pass for it)
    if any("OutOfMemory" in n for n in names) or (
        isinstance(exc, RuntimeError)
        and str(exc).startswith(("CUDA out of memory", "CUDA error: out of memory"))
    ):
        return True
    if "RayTaskError" not in names and any(c.__module__.split(".")[0] == "ray" for c in mro):
        return True  # a dead worker or actor, a lost object: Ray's own failure
    if isinstance(exc, OSError):
        return exc.errno in ENVIRONMENT_ERRNOS
    return False


def _ray_cause(exc: BaseException) -> BaseException | None:
    """The exception a Ray task raised, for a ``RayTaskError`` (ray.get re-raises the task's error wrapped)."""
    if any(c.__name__ == "RayTaskError" for c in type(exc).__mro__):
        cause = getattr(exc, "cause", None)
        return cause if isinstance(cause, BaseException) else None
    return None


def describe(exc: BaseException, limit: int = 1000) -> str:
    """``Type: message`` for reports, cut to ``limit`` characters (hostile input ends up in messages)."""
    message = str(exc)
    if len(message) > limit:
        message = f"{message[:limit]}... ({len(message):,} chars)"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
