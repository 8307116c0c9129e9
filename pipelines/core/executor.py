"""One way to run independent tasks: ``executor.map(fn, items) -> results``, in order.

Three implementations with the same contract, so a pass never knows where it runs:

Pick one by name with :func:`get_executor` (``auto``: Ray when ``RAY_ADDRESS`` names a cluster, else a process pool).

* :class:`LocalExecutor`: in this process, one item after another (tests, debugging, tiny inputs);
* :class:`ProcessExecutor`: a pool of worker processes on this machine; a worker that dies (out of memory, a
  signal) breaks the pool: the pool is rebuilt and the items that had not finished run again;
* :class:`RayExecutor`: one Ray task per item, spread over the cluster (``SPREAD``: tasks are independent and
  I/O-heavy; the first task of a pass on each node that can run it, so even a pass of two tasks uses two nodes), retried by Ray when their worker or node dies (``max_retries``), with the object-store credentials of
  this process forwarded to the workers and a progress bar.

Contract: ``fn`` and the items must pickle (a module-level function, plain data); a task's work must be idempotent
(it writes its results atomically and a marker last), since a retried item runs again from the start.  An exception
raised by ``fn`` is not retried: every item still runs, then :class:`TaskFailed` names each failed item and chains
the first error.  This module imports nothing outside ``pipelines.core``, so every floor may use it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from pipelines.core import storage
from pipelines.core.paths import REPO_ROOT

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: what stays behind when the repository (``REPO_ROOT``) is shipped to a Ray cluster as the job's working_dir
RUNTIME_EXCLUDES = [".venv/", "output/", "models/", ".git/", "bench/generated/", ".cache/", "**/__pycache__/"]
NAMES = ("auto", "local", "process", "ray")


class TaskFailed(RuntimeError):
    """One or more items failed; ``failures`` is ``[(item description, exception), ...]``, ``by_index`` maps the
    position of each failed item in ``items`` to its exception (a caller that reports per item, e.g. the runner)."""

    def __init__(
        self,
        desc: str,
        failures: list[tuple[str, BaseException]],
        by_index: dict[int, BaseException] | None = None,
    ):
        self.failures = failures
        self.by_index = dict(by_index or {})
        lines = "\n".join(f"  {item}: {type(e).__name__}: {e}" for item, e in failures)
        super().__init__(f"{desc}: {len(failures)} item(s) failed (a rerun retries them):\n{lines}")


class Executor(Protocol):
    """Runs ``fn`` over ``items``; results in the order of ``items``."""

    name: str

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "") -> list[R]: ...


def describe(item: Any, limit: int = 160) -> str:
    """A short name of an item for error reports (its repr, cut)."""
    text = repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def forwarded_env() -> dict[str, str]:
    """The object-store settings of this process that Ray workers need (``storage.ENV_VARS``: AWS_* credentials,
    region and endpoint, GOOGLE_APPLICATION_CREDENTIALS, emulator hosts), the same set the runner forwards.

    ``WINNOW_FORWARD_STORAGE_ENV=0`` forwards nothing (nodes with their own credentials, e.g. instance roles).  Only
    these names travel: any other variable would give the tasks a runtime env of their own, and Ray would start a
    second set of workers for it.
    """
    if os.environ.get("WINNOW_FORWARD_STORAGE_ENV", "1") == "0":
        return {}
    return storage.forwarded_env()


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc or "tasks",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def _raise_failures(desc: str, items: Sequence[Any], failed: dict[int, BaseException]) -> None:
    if failed:
        order = sorted(failed)
        failures = [(describe(items[i]), failed[i]) for i in order]
        raise TaskFailed(desc or "map", failures, failed) from failed[order[0]]


class LocalExecutor:
    """Every item in this process, in order."""

    name = "local"

    def __init__(self, progress: bool = False):
        self.progress = progress

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "") -> list[R]:
        results: list[Any] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        with _progress(len(items), desc, self.progress) as bar:
            for i, item in enumerate(items):
                try:
                    results[i] = fn(item)
                except Exception as exc:  # noqa: BLE001 - every item runs, then all failures are reported
                    failed[i] = exc
                bar.update(1)
        _raise_failures(desc, items, failed)
        return results


def _die_with_parent(parent: int) -> None:
    """Pool worker start-up: the worker dies with the process that made the pool (Linux ``PR_SET_PDEATHSIG``).

    Without it a kill -9 of the run leaves its idle workers behind for good (children of init, holding the run's
    pipes open), one set per killed cron run."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl in this libc: the workers just lack the guard
            pass
    if os.getppid() != parent:  # the parent died before the guard was set
        os._exit(1)


class ProcessExecutor:
    """A process pool of ``workers``; items whose worker died run again in a fresh pool (``retries`` times)."""

    name = "process"

    def __init__(self, workers: int | None = None, retries: int = 2, progress: bool = False):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.retries = retries
        self.progress = progress
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        """The pool, started at the first map and kept for the next ones: a multi-pass workflow (MinHash runs ~8
        passes on one executor) pays for its workers' start-up and imports once, not per pass.  Its processes go
        when the executor is closed or garbage-collected, or with the process that made them."""
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self.close()  # a worker died in an earlier map: that pool takes no more work
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_die_with_parent, initargs=(os.getpid(),)
            )
        return self._pool

    def close(self) -> None:
        """Stop the pool's processes (a later map starts a new pool)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "") -> list[R]:
        if self.workers == 1 or (len(items) <= 1 and self._pool is None):
            # one item and no pool yet: not worth starting one.  With a pool (a later pass of a workflow) even a
            # single task runs there, so its memory stays out of the driver (MinHash's one-task components)
            return LocalExecutor(self.progress).map(fn, items, desc)
        results: list[Any] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        attempts = [0] * len(items)
        todo = list(range(len(items)))
        with _progress(len(items), desc, self.progress) as bar:
            while todo:
                died: list[int] = []
                pool = self._get_pool()
                futures = {pool.submit(fn, items[i]): i for i in todo}
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            i = futures[fut]
                            attempts[i] += 1
                            try:
                                results[i] = fut.result()
                            except BrokenProcessPool as exc:
                                if attempts[i] > self.retries:
                                    failed[i] = exc
                                else:
                                    died.append(i)
                                    continue
                            except Exception as exc:  # noqa: BLE001
                                failed[i] = exc
                            bar.update(1)
                except BaseException:  # interrupted: no half-run pool survives into a later map
                    self.close()
                    raise
                if died:
                    self.close()  # a broken pool takes no more work: the items that died run in a new one
                    log.warning(
                        "%s: a worker died; %d item(s) run again in a new pool", desc or "map", len(died)
                    )
                todo = sorted(died)
        _raise_failures(desc, items, failed)
        return results


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a private embedded Ray, or connect to ``address`` / ``RAY_ADDRESS`` and ship this repository as
    working_dir."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(
            address=address,
            runtime_env={"working_dir": REPO_ROOT, "excludes": RUNTIME_EXCLUDES},
            log_to_driver=True,
        )
    else:  # never joins another Ray on this machine; see pipelines.core.embedded_ray
        from pipelines.core import embedded_ray

        embedded_ray.start(num_cpus)


#: functions of recent ``map`` calls, deserialised once per worker process (see :func:`_call`); a few, not all
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {}
_FUNCTIONS_KEPT = 4


def _call(fn_box: list[Any], item: Any) -> tuple[Any, str]:
    """``fn(item)`` and the node it ran on (the executor records where each pass ran).

    ``fn_box`` holds the function's object ref inside a list, so Ray does not resolve it per task: a worker process
    deserialises each map's function once and reuses it for every item it runs.  For the runner the function holds
    the recipe, so the steps' ``setup`` (loading block lists, models, tokenizers) runs once per worker process
    instead of once per input, as the local executor does; per-input state is reset by the steps themselves."""
    import ray

    ref = fn_box[0]
    key = ref.hex()
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = ray.get(ref)
        while len(_FUNCTIONS) >= _FUNCTIONS_KEPT:
            _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
        _FUNCTIONS[key] = fn
    return fn(item), ray.get_runtime_context().get_node_id()


#: exceptions after which Ray runs a task again (``retry_exceptions``): the object store or a disk failed
#: (``StorageError`` is an ``OSError``; pyarrow's S3/GCS errors are ``OSError`` too).  Every task is idempotent
#: (atomic outputs, markers last), so a retry after a half-done attempt is safe.
RETRIED = (OSError,)


class RayExecutor:
    """One Ray task per item: spread over the nodes, ``max_retries`` on worker or node death, credentials forwarded.

    Ray's ``SPREAD`` alone may still run a small pass on one node: a worker that finishes a task takes the next
    queued one of the same kind before a second node's worker is leased.  So the first tasks of a pass go one to
    each node that can run them (:meth:`placements`: a soft node affinity that spills elsewhere when that node is
    busy or gone), the rest with ``SPREAD``.  Where a task runs never changes what it writes.

    ``resources`` are Ray task options (``{"num_cpus": 1}`` by default; memory-hungry passes may ask for more).
    A task that raises an ``OSError`` (:data:`RETRIED`: the store or a disk failed) is retried too, up to
    ``max_retries`` times.  :attr:`nodes` records, per pass (``desc``), the node of each task, in item order.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        max_retries: int = 3,
        resources: dict[str, Any] | None = None,
        progress: bool = True,
        env: dict[str, str] | None = None,
    ):
        self.address = address
        self.max_retries = max_retries
        self.resources = dict(resources or {})
        self.progress = progress
        self.env = env
        self.nodes: dict[str, list[str]] = {}
        self._passes = 0  # rotates the node that gets a pass's first task

    def placements(self, n: int) -> list[Any]:
        """Scheduling strategies for the first tasks of a pass of ``n``: one per alive node with the resources of a
        task (``num_cpus``, ``num_gpus``, custom ``resources``), starting at a node that rotates per pass; empty
        when fewer than two tasks or nodes."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if n < 2:
            return []
        need = {
            "CPU": float(self.resources.get("num_cpus", 1)),
            "GPU": float(self.resources.get("num_gpus", 0)),
            **{k: float(v) for k, v in (self.resources.get("resources") or {}).items()},
        }
        nodes = sorted(
            node["NodeID"]
            for node in ray.nodes()
            if node.get("Alive") and all(node["Resources"].get(k, 0.0) >= v for k, v in need.items() if v > 0)
        )
        if len(nodes) < 2:
            return []
        start = self._passes % len(nodes)
        self._passes += 1
        order = nodes[start:] + nodes[:start]
        return [
            NodeAffinitySchedulingStrategy(node, soft=True, _spill_on_unavailable=True) for node in order[:n]
        ]

    def options(self) -> dict[str, Any]:
        """The Ray options of every task (the runner's per-input tasks use the same)."""
        opts: dict[str, Any] = {
            "max_retries": self.max_retries,
            "retry_exceptions": list(RETRIED),
            "scheduling_strategy": "SPREAD",
            **self.resources,
        }
        env = forwarded_env() if self.env is None else self.env
        if env:
            opts["runtime_env"] = {"env_vars": env}
        return opts

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "") -> list[R]:
        if not items:
            return []
        import ray

        init_ray(self.address)
        opts, remote = self.options(), ray.remote(_call)
        task = remote.options(**opts)
        first = [remote.options(**{**opts, "scheduling_strategy": s}) for s in self.placements(len(items))]
        fn_box = [ray.put(fn)]  # boxed: resolved once per worker process, not per task (_call)
        refs = {
            (first[i] if i < len(first) else task).remote(fn_box, item): i for i, item in enumerate(items)
        }
        results: list[Any] = [None] * len(items)
        where: list[str] = [""] * len(items)
        failed: dict[int, BaseException] = {}
        with _progress(len(items), desc, self.progress) as bar:
            remaining = list(refs)
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=min(len(remaining), 64), timeout=1.0)
                for ref in done:
                    i = refs[ref]
                    try:
                        results[i], where[i] = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - report every failed item, then fail
                        failed[i] = getattr(exc, "cause", None) or exc
                    bar.update(1)
        self.nodes.setdefault(desc, []).extend(where)
        _raise_failures(desc, items, failed)
        return results


def get_executor(spec: str | Executor | None = None, workers: int | None = None, **kwargs: Any) -> Executor:
    """An executor from a name (``local``, ``process``, ``ray``) or an executor object (returned as is).

    ``auto`` (or None) chooses Ray when ``RAY_ADDRESS`` names a cluster, a process pool of this machine otherwise.
    """
    if spec is None or spec == "auto":
        spec = "ray" if os.environ.get("RAY_ADDRESS") else "process"
    if not isinstance(spec, str):
        return spec
    if spec == "local":
        return LocalExecutor(**kwargs)
    if spec == "process":
        return ProcessExecutor(workers, **kwargs)
    if spec == "ray":
        return RayExecutor(**kwargs)
    raise ValueError(f"executor must be one of {', '.join(NAMES)} (or an executor object), got {spec!r}")
