"""The runner: inputs through the recipe's steps on an executor (``pipelines.core.executor``), then corpus stages.

One executor task per pending input (``process_input``), largest first; completed inputs are skipped, so a killed cron
job restarts where it stopped, and a completed input whose Parquet file was found damaged is redone.  Ray runs
embedded by default (``num_cpus`` = cores; its own instance even when another Ray runs on the machine) and joins a
cluster when ``RAY_ADDRESS`` is set, shipping the code as the job's ``working_dir``.  Steps that declare
``resources`` (a GPU) run as an actor pool when the cluster has that resource, and inside the tasks otherwise.

Why Ray tasks over input files rather than a Ray Data graph: an input is the unit of resume, and its outputs must be
named from it and written atomically with a marker; per-input tasks give that directly, while Ray Data would
re-partition rows across files.  Batches inside a task are still Arrow tables, as in ``map_batches``.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipelines.core import storage
from pipelines.core.corpus_stage import run_stages  # noqa: F401 - the chain of corpus stages, re-exported
from pipelines.core.errors import describe
from pipelines.core.executor import TaskFailed, get_executor, init_ray
from pipelines.core.inputs import input_sizes, largest_first
from pipelines.core.layout import (
    SourceLayout,
    clean_tmp_files,
    input_key,
    quarantine_damaged,
    write_json_atomic,
)
from pipelines.core.locks import run_lock
from pipelines.core.logs import setup_logging
from pipelines.core.process import process_input
from pipelines.core.recipe import Recipe
from pipelines.core.steps import Step, StepResult

log = logging.getLogger(__name__)


class InputsFailed(RuntimeError):
    """Some inputs failed (an environment error, a dead worker): they have no marker, so a rerun retries them.

    The other inputs completed and ``summary.json`` covers them; corpus stages wait for a run where every input
    completed.  ``failures`` maps each failed input to why."""

    def __init__(self, source: str, failures: dict[str, str]):
        self.source, self.failures = source, failures
        lines = "\n".join(f"  {path}: {why}" for path, why in sorted(failures.items()))
        super().__init__(
            f"{source}: {len(failures)} input(s) failed and were not marked done; fix the cause and rerun to retry "
            f"them (completed inputs are kept):\n{lines}"
        )


@dataclass
class RunResult:
    source: str
    inputs: int
    processed: int
    already_done: int
    seconds: float
    summary: dict[str, Any]


class ActorStep:
    """Stands in for a model step inside tasks; sends each batch to one of the step's actors.

    Not a :class:`Step`: it has the step's name, kind and columns, and a call, which is all the per-input
    processing uses; its work happens in the actors."""

    def __init__(self, inner: Step, actors: list[Any]):
        self.actors = actors
        #: how the step runs, for the run's summary: {"actors": n, "num_gpus": 1, ...}
        self.placement = {"actors": len(actors), **inner.resources}
        self.name, self.kind, self.reads, self.resources = (
            inner.name,
            inner.kind,
            inner.reads,
            inner.resources,
        )
        #: rows of these domains never reach the actors (the per-input processing reads it, as of a Step)
        self.skip_domains = list(inner.skip_domains)
        self._adds = inner.adds()

    def adds(self) -> dict[str, pa.DataType]:
        return self._adds

    def check(self) -> None:
        """Checked as the step it stands for, before it was placed."""

    def start_input(self, path: str) -> None:
        """Nothing to forget: only steps without per-input state become actors (``_actor_steps``), since one actor
        serves batches of many inputs at once."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_next"}

    def __call__(self, batch: pa.Table) -> StepResult:
        import ray

        # round robin over the pool; each task's copy starts at a random actor (``_next`` is not pickled)
        n = getattr(self, "_next", None)
        if n is None:
            n = random.randrange(len(self.actors))
        self._next = n + 1
        return ray.get(self.actors[n % len(self.actors)].process.remote(batch))


#: a step's ``resources`` keys as Ray options -> the names ``ray.cluster_resources()`` reports them under
_RAY_RESOURCE = {"num_gpus": "GPU", "num_cpus": "CPU"}


def _actor_steps(recipe: Recipe) -> Recipe:
    """Replace steps that want resources the cluster has with actor-pool proxies."""
    import ray

    wanted = [s for s in recipe.steps if s.resources]
    if not wanted:
        return recipe
    available = ray.cluster_resources()
    recipe = copy.copy(recipe)
    steps = []
    for step in recipe.steps:
        res = step.resources
        have = {k: available.get(_RAY_RESOURCE.get(k, k), 0) for k in res}
        if res and type(step).start_input is not Step.start_input:
            # an actor serves many inputs at once: a step that resets state per input stays inside the tasks
            log.warning("step %s keeps per-input state: it runs inside the tasks, not as an actor", step.name)
            steps.append(step)
        elif res and all(have[k] >= v for k, v in res.items()):
            n = max(1, int(min(have[k] // v for k, v in res.items() if v)))
            custom = {k: v for k, v in res.items() if k not in _RAY_RESOURCE}
            cls = ray.remote(_StepActor).options(
                num_cpus=res.get("num_cpus", 0), num_gpus=res.get("num_gpus", 0), resources=custom or None
            )
            actors = [cls.remote(step) for _ in range(n)]
            log.info("step %s runs as %d actor(s) with %s", step.name, n, res)
            steps.append(ActorStep(step, actors))  # type: ignore[arg-type]
        else:
            steps.append(step)
    recipe.steps = steps
    return recipe


class _StepActor:
    def __init__(self, step: Step):
        self.step = step

    def process(self, batch: pa.Table) -> StepResult:
        return self.step(batch)


def _remote_process(recipe: Recipe, out_root: str, sizes: dict[str, int], path: str) -> dict[str, Any]:
    """One input in a Ray task; its stats also record the Ray node it ran on (``node``), to audit cluster runs."""
    import ray

    setup_logging()  # a Ray worker is an entry point of its own
    stats = process_input(recipe, path, out_root, sizes.get(path))
    stats["node"] = ray.get_runtime_context().get_node_id()
    # the marker is already written: if the worker dies here the input stays done, its stats just lack `node`
    write_json_atomic(SourceLayout(out_root, recipe.source).path("stats", stats["key"], "json"), stats)
    return stats


def merge_stats(stats: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-input stats into one summary (counts by reason and per step)."""
    total: dict[str, Any] = {"inputs": 0, "read": 0, "kept": 0, "rejected": 0, "seconds": 0.0}
    reasons: Counter = Counter()
    skipped: Counter = Counter()
    steps: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for s in stats:
        total["inputs"] += 1
        for k in ("read", "kept", "rejected"):
            total[k] += s.get(k, 0)
        total["seconds"] += s.get("seconds", 0.0)
        reasons.update(s.get("rejected_by_reason", {}))
        skipped.update(s.get("skipped", {}))
        errors.extend(f"{s.get('input')}: {e}" for e in s.get("errors", []))
        for st in s.get("steps", []):
            agg = steps.setdefault(
                st["name"],
                {
                    "kind": st["kind"],
                    "seen": 0,
                    "kept": 0,
                    "changed": 0,
                    "seconds": 0.0,
                    "dropped": Counter(),
                },
            )
            for k in ("seen", "kept", "changed", "seconds"):
                agg[k] += st.get(k, 0)
            agg["dropped"].update(st.get("dropped", {}))
    for agg in steps.values():
        agg["dropped"] = dict(sorted(agg["dropped"].items()))
        agg["seconds"] = round(agg["seconds"], 3)
    total["seconds"] = round(total["seconds"], 3)
    total["rejected_by_reason"] = dict(reasons.most_common())
    total["skipped"] = dict(skipped.most_common())
    total["steps"] = steps
    total["errors"] = errors
    return total


def run_recipe(
    recipe: Recipe,
    input_spec: str | list[str],
    out_root: str,
    *,
    executor: str = "ray",
    wait_for_lock: bool = False,
    progress: bool = True,
    ray_address: str | None = None,
) -> RunResult:
    """Run ``recipe`` over every input not yet done, then the corpus stages; write ``summary.json``."""

    recipe.validate()
    t0 = time.perf_counter()
    specs = [input_spec] if isinstance(input_spec, str) else list(input_spec)
    inputs = sorted({p for spec in specs for p in recipe.reader.discover(spec)})
    layout = SourceLayout(out_root, recipe.source)
    actor_steps: dict[str, dict[str, Any]] = {}
    with run_lock(layout.base, wait=wait_for_lock):
        layout.make_dirs()
        for kind in ("docs", "rejected", "stats", "_done"):
            clean_tmp_files(layout.dir(kind))
        pending = _pending(layout, inputs)
        done = sorted(set(inputs) - set(pending))
        redo = set(quarantine_damaged(layout, [input_key(p) for p in done]))
        pending = pending + [p for p in done if input_key(p) in redo]
        sizes = input_sizes(pending)  # from the listing: no request per input, here or in the tasks
        pending = largest_first(pending, sizes)
        log.info("%s: %d inputs, %d pending", recipe.source, len(inputs), len(pending))
        failures: dict[str, str] = {}
        if pending:
            if executor == "local":
                failures = _run_local(recipe, pending, out_root, progress, sizes)
            else:
                actor_steps, failures = _run_ray(recipe, pending, out_root, progress, ray_address, sizes)
            for kind in ("docs", "rejected", "stats", "_done"):  # partial files of worker attempts that died
                clean_tmp_files(layout.dir(kind))
        # corpus stages (dedup) move rows between docs/ and rejected/ and recount the per-input stats, so the
        # summary is merged after them; they wait until every input is done
        stage_results = (
            run_stages(recipe.corpus_stages, layout.base, inputs_written=bool(pending))
            if not failures
            else {}
        )
        stats = _read_stats(layout, [p for p in inputs if p not in failures])
        summary = merge_stats(stats)
        if failures:
            summary["failed"] = dict(sorted(failures.items()))
        if stage_results:
            summary["corpus_stages"] = stage_results
        if actor_steps:  # model steps that ran as Ray actor pools in this run (e.g. on GPUs)
            summary["actor_steps"] = actor_steps
        summary["source"] = recipe.source
        write_json_atomic(storage.join(layout.base, "summary.json"), summary)
    if failures:
        raise InputsFailed(recipe.source, failures)
    return RunResult(
        recipe.source,
        len(inputs),
        len(pending),
        len(inputs) - len(pending),
        round(time.perf_counter() - t0, 3),
        summary,
    )


def _read_stats(layout: SourceLayout, inputs: list[str]) -> list[dict[str, Any]]:
    """Every input's stats file, read in parallel (on object storage each is one GET)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = layout.folder
    names = [layout.name("stats", input_key(p), "json") for p in inputs]
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(folder.read_json, names))


def _pending(layout: SourceLayout, inputs: list[str]) -> list[str]:
    """Inputs without a completion marker, from one listing of ``_done/`` (not a lookup per input)."""
    done = {
        storage.basename(o.uri) for o in layout.folder.child("_done").list(suffix=".json", recursive=False)
    }
    return [p for p in inputs if f"{input_key(p)}.json" not in done]


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, unit="input", desc="inputs", disable=not enabled, file=sys.stderr, dynamic_ncols=True
    )


def _run_local(
    recipe: Recipe, pending: list[str], out_root: str, progress: bool, sizes: dict[str, int]
) -> dict[str, str]:
    """Process the inputs one after the other; an input that fails is reported and the others still run."""
    kept = 0
    failures: dict[str, str] = {}
    with _progress(len(pending), progress) as bar:
        for path in pending:
            try:
                kept += process_input(recipe, path, out_root, sizes.get(path))["kept"]
            except Exception as exc:  # noqa: BLE001 - reported with the others at the end; no marker was written
                failures[path] = describe(exc)
                log.error("input %s failed (no marker: a rerun retries it): %s", path, failures[path])
            bar.set_postfix(kept=kept)
            bar.update(1)
    return failures


def _forward_storage_env(pending: list[str], out_root: str) -> bool:
    """Whether the tasks get this process's object-store settings (AWS_*, GOOGLE_APPLICATION_CREDENTIALS...) in
    their runtime_env: when the run touches object storage, unless WINNOW_FORWARD_STORAGE_ENV=0 (nodes with their
    own credentials, e.g. instance roles, and no wish to see keys in the job's runtime_env)."""
    if os.environ.get("WINNOW_FORWARD_STORAGE_ENV", "1") == "0" or not storage.forwarded_env():
        return False
    return storage.is_uri(out_root) or any(storage.is_uri(p) for p in pending)


def _run_ray(
    recipe: Recipe,
    pending: list[str],
    out_root: str,
    progress: bool,
    address: str | None,
    sizes: dict[str, int],
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Run the pending inputs as tasks of the Ray executor (SPREAD, retries on worker death, credentials, progress);
    returns the placement of the steps that ran as actor pools and the inputs that failed (with why)."""
    init_ray(address)
    recipe = _actor_steps(recipe)
    placements = {s.name: s.placement for s in recipe.steps if isinstance(s, ActorStep)}
    env = storage.forwarded_env() if _forward_storage_env(pending, out_root) else {}
    executor = get_executor("ray", address=address, progress=progress, env=env)
    task = functools.partial(_remote_process, recipe, storage.absolute(out_root), sizes)
    failures: dict[str, str] = {}
    try:
        kept = sum(s["kept"] for s in executor.map(task, pending, "inputs"))
        log.info("%s: %d input(s) processed, %d documents kept", recipe.source, len(pending), kept)
    except TaskFailed as exc:  # every input ran; report each failed one, then fail the run
        for i, err in sorted(exc.by_index.items()):
            failures[pending[i]] = describe(err)
            log.error("input %s failed (no marker: a rerun retries it): %s", pending[i], failures[pending[i]])
    return placements, failures
