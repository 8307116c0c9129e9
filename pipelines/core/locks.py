"""The run lock on object storage: an advisory lock object (``OUTPUT/<source>/.lock``) with a heartbeat.

flock does not exist on S3 or GCS, and pyarrow offers no conditional write (compare-and-swap), so this lock is
*advisory*: it keeps a second run off the same OUTPUT in every ordinary case (a cron job started while the last one
still runs, a colleague's run) and names the holder, but two runs that start within the same second can both take
it.  How it works:

* the object holds JSON: ``token`` (random, per run), ``host``, ``pid``, ``since``, ``heartbeat``;
* to take it, a run reads it; if it is absent or stale it writes its own, waits :data:`SETTLE_S` and reads it back:
  only the run whose token is there holds the lock (the other one lost the race and fails, or waits);
* the holder rewrites it every ``stale_after / 4`` seconds (at most every minute) from a thread, and deletes it when
  the run ends if it still holds its token;
* it is **stale** when its object was last written more than ``WINNOW_LOCK_STALE_S`` seconds ago (default 600;
  the object's own time, set by the store, so the holder's clock does not matter) or when it names a process of
  *this* host that no longer exists.  A stale lock is taken over with a warning, so a run killed with -9 blocks the
  next one for at most ``WINNOW_LOCK_STALE_S`` (delete the object to go on at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pipelines.core import storage
from pipelines.core.folder import Folder, split

log = logging.getLogger(__name__)

#: seconds between writing the lock and reading it back (a concurrent taker's write lands in between)
SETTLE_S = 1.0
DEFAULT_STALE_S = 600.0


class LockedError(RuntimeError):
    pass


@contextlib.contextmanager
def run_lock(folder: str, wait: bool = False, poll_s: float = 2.0) -> Iterator[None]:
    """Hold an exclusive flock on ``folder/.lock``; a second run fails at once with who holds it (or waits).

    flock is released by the kernel when the holder dies (kill -9 included), so a stale lock never blocks cron.
    On object storage (``s3://``, ``gs://``) the lock is an advisory lock object: :func:`object_lock`.
    """
    if Folder(folder).remote:  # no flock on an object store
        with object_lock(storage.join(folder, ".lock"), wait=wait, poll_s=poll_s):
            yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait:
                    time.sleep(poll_s)
                    continue
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
                raise LockedError(
                    f"another Winnow run is writing to {folder} ({holder}). Wait for it to finish, "
                    f"use another OUTPUT, or pass --wait to queue behind it."
                ) from None
        info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def stale_after_s() -> float:
    return float(os.environ.get("WINNOW_LOCK_STALE_S", DEFAULT_STALE_S))


def read_lock(uri: str) -> tuple[dict[str, Any] | None, float | None]:
    """``(content, age in seconds)`` of the lock object, ``(None, None)`` when there is none.  Unreadable content
    comes back as ``{}`` (held by an unknown run, stale by age only)."""
    folder, name = split(uri)
    try:
        raw = folder.read_bytes(name)
    except FileNotFoundError:
        return None, None
    try:
        info = json.loads(raw.decode("utf-8"))
        info = info if isinstance(info, dict) else {}
    except (UnicodeDecodeError, ValueError):
        info = {}
    listed = folder.info(name)
    mtime = listed.mtime_ns if listed is not None and listed.mtime_ns > 0 else None
    if mtime is not None:
        age = time.time() - mtime / 1e9
    else:  # a store without modification times: the holder's own clock
        age = time.time() - float(info.get("heartbeat", 0) or 0)
    return info, max(0.0, age)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def stale_reason(info: dict[str, Any], age_s: float, stale_after: float) -> str | None:
    """Why the lock may be taken over, or None while its holder counts as alive."""
    pid = info.get("pid")
    if (
        info.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and pid != os.getpid()
        and not _pid_alive(pid)
    ):
        return f"its process {pid} no longer exists on this host"
    if age_s > stale_after:
        return f"it was last renewed {age_s:.0f} s ago (stale after {stale_after:.0f} s, WINNOW_LOCK_STALE_S)"
    return None


def describe(info: dict[str, Any] | None, age_s: float | None) -> str:
    if not info:
        return "holder unknown"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}, "
        f"last renewed {age_s or 0:.0f} s ago"
    )


def _held_message(uri: str, info: dict[str, Any] | None, age_s: float | None, stale_after: float) -> str:
    folder = storage.dirname(uri)
    return (
        f"another Winnow run is writing to {folder} ({describe(info, age_s)}). Wait for it to finish, use "
        f"another OUTPUT, or pass --wait to queue behind it. On object storage the lock is an advisory object "
        f"({uri}): it is taken over when not renewed for {stale_after:.0f} s (WINNOW_LOCK_STALE_S); if that "
        f"run is known to be dead, delete the object to go on now."
    )


class _Heartbeat(threading.Thread):
    def __init__(self, uri: str, content: dict[str, Any], every_s: float):
        super().__init__(name="winnow-lock-heartbeat", daemon=True)
        self.uri, self.content, self.every_s = uri, content, every_s
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                current, _ = read_lock(self.uri)
                if not current or current.get("token") != self.content["token"]:
                    log.error(
                        "the run lock %s was taken over by another run (%s); this run goes on, but two runs "
                        "now write to the same OUTPUT",
                        self.uri,
                        describe(current, None),
                    )
                    return
                self.content["heartbeat"] = time.time()
                folder, name = split(self.uri)
                folder.write_json(name, self.content)
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; the run is not stopped
                log.warning("could not renew the run lock %s: %s", self.uri, exc)


@contextlib.contextmanager
def object_lock(
    uri: str, wait: bool = False, poll_s: float = 2.0, stale_after: float | None = None
) -> Iterator[dict[str, Any]]:
    """Hold the advisory lock object ``uri`` for the duration of the block (see the module docstring)."""
    stale_after = stale_after_s() if stale_after is None else stale_after
    folder, name = split(uri)
    now = time.time()
    content = {
        "token": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
        "heartbeat": now,
    }
    while True:
        info, age = read_lock(uri)
        if info is not None and info.get("token") != content["token"]:
            why = stale_reason(info, age or 0.0, stale_after)
            if why is None:
                if wait:
                    time.sleep(poll_s)
                    continue
                raise LockedError(_held_message(uri, info, age, stale_after))
            log.warning("taking over the run lock %s (%s): %s", uri, describe(info, age), why)
        folder.write_json(name, content)
        time.sleep(SETTLE_S)
        back, back_age = read_lock(uri)
        if back is not None and back.get("token") == content["token"]:
            break
        if not wait:  # another run wrote its lock between our read and our write-back check
            raise LockedError(_held_message(uri, back, back_age, stale_after))
        time.sleep(poll_s)
    beat = _Heartbeat(uri, content, every_s=max(0.5, min(60.0, stale_after / 4)))
    beat.start()
    try:
        yield content
    finally:
        beat.stop.set()
        beat.join(timeout=30)
        with contextlib.suppress(Exception):
            current, _ = read_lock(uri)
            if current and current.get("token") == content["token"]:
                folder.remove(name)
