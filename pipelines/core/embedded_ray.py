"""The runner's own Ray when no cluster is named (no ``RAY_ADDRESS``): private, and cleaned up after a crash.

``ray.init()`` without an address joins whatever Ray instance it finds on the machine (another user's job, a second
cron source), and then refuses ``num_cpus`` ("When connecting to an existing cluster, num_cpus and num_gpus must not
be provided").  An embedded run therefore always starts its own instance (``address="local"``: fresh ports) in its
own temporary folder ``wr-XXXXXXXX`` under ``RAY_TMPDIR`` (or the system's), without a dashboard.

After ``kill -9`` of the driver, Ray's reaper usually takes its processes down, but agents have been seen to outlive
it.  The folder holds ``owner.json`` (the driver's pid and start time); the next embedded start reaps every such
folder whose driver is dead: it kills the processes whose command line names the folder, then removes it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterable

log = logging.getLogger(__name__)

PREFIX = "wr-"
OWNER = "owner.json"


def temp_base() -> str:
    return os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()


def start(num_cpus: int | None) -> str:
    """Start a private embedded Ray (after reaping dead runs' leftovers); returns its temporary folder."""
    import psutil
    import ray

    base = temp_base()
    os.makedirs(base, exist_ok=True)
    reaped = reap_dead_sessions(base)
    if reaped:
        log.warning("killed %d Ray process(es) left behind by an earlier run whose driver died", reaped)
    # short: Ray's Unix socket paths under it are limited to 107 bytes
    folder = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    me = psutil.Process()
    with open(os.path.join(folder, OWNER), "w", encoding="utf-8") as f:
        json.dump({"pid": me.pid, "create_time": me.create_time()}, f)
    ray.init(
        address="local",
        _temp_dir=folder,
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=False,
        log_to_driver=True,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    return folder


def _owner_alive(folder: str) -> bool:
    import psutil

    try:
        with open(os.path.join(folder, OWNER), encoding="utf-8") as f:
            owner = json.load(f)
        proc = psutil.Process(int(owner["pid"]))
        return abs(proc.create_time() - float(owner["create_time"])) < 1.0  # not a reused pid
    except FileNotFoundError:  # being created right now by another start, or not ours
        return True
    except (psutil.Error, ValueError, KeyError, TypeError):
        return False


def reap_dead_sessions(base: str) -> int:
    """Kill the processes of every ``wr-*`` folder under ``base`` whose driver is gone and remove the folder; returns
    how many processes were killed.  Only processes naming such a folder on their command line (and their children)
    are touched, never another run's."""
    killed = 0
    for folder in sorted(glob.glob(os.path.join(base, f"{PREFIX}*"))):
        if not os.path.isdir(folder) or _owner_alive(folder):
            continue
        killed += kill_processes_naming(folder)
        shutil.rmtree(folder, ignore_errors=True)
    return killed


def kill_processes_naming(marker: str, spare: Iterable[int] = ()) -> int:
    """SIGKILL every process (and its descendants) whose command line contains ``marker``, except this one and
    the pids in ``spare`` (a test spares its own parents)."""
    import psutil

    spared = {os.getpid(), *spare}
    victims: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.pid not in spared and any(marker in part for part in (p.info["cmdline"] or [])):
                victims[p.pid] = p
                for c in p.children(recursive=True):
                    victims[c.pid] = c
    for pid in spared:
        victims.pop(pid, None)
    for p in victims.values():
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(victims.values()), timeout=10)
    return len(victims)
