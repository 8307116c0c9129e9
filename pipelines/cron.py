"""``winnow cron`` (``make cron``): the unattended run — every configured source, then mixtures and the report.

Built for cron: one log file per OUTPUT (appended), exit status 0 when everything went through and 1 when anything
failed (the other sources and stages still run; each failure is logged at ERROR with its reason), 2 when another
cron run holds OUTPUT.  When nothing changed it does nothing: a source whose inputs (path, size, mtime) and settings
are the same as at its last successful run, with every input marked done, is not even started.  A mixture stage is
rebuilt when the sources or its YAML changed since it last succeeded, or when it failed last time, so a failure is
retried on every run until it goes through; the report likewise.  A stage that selects nothing (long_context on
short documents) is "empty", not a failure, unless ``--strict`` or the mixture says ``on_empty: error``.

The per-source dedup passes (CommonCrawl MinHash, GitHub exact, books near-dup) are corpus stages of the source
runs, so "then dedup" happens inside each source's run, after its last input.

OUTPUT may be a local path or an ``s3://`` / ``gs://`` URI (no shared filesystem needed): cron's state
(``OUTPUT/_cron/state.json``) and its lock go through :class:`~pipelines.core.folder.Folder` and
:func:`~pipelines.core.locks.run_lock` (an advisory lock object on a store), the sources, mixtures and report
write through the same storage object.  A store has no appends, so there the log of each run is its own object,
``OUTPUT/_cron/logs/<time>-<host>-<pid>.log``, written when the run ends (``--log`` names a local file instead).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from pipelines.core import storage
from pipelines.core.commands import add_command
from pipelines.core.folder import Folder, ObjectInfo, listing_fingerprint, split, stat
from pipelines.core.layout import SourceLayout, input_key
from pipelines.core.locks import LockedError, run_lock
from pipelines.core.logs import log_to_file
from pipelines.sources.registry import SOURCES, build_recipe, load_config, resolve_path

log = logging.getLogger("winnow.cron")
MIXTURE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mixtures"
)  # shipped YAMLs
#: cron's memory under OUTPUT/_cron/: source fingerprints and the status of each mixture stage
STATE = "state.json"


def fingerprint(config: dict[str, Any], inputs: list[str]) -> str:
    """Hash of a source's settings and of its inputs' listing (absolute path, size, mtime), never of their bytes.

    Sizes and mtimes come from one listing per folder of inputs (on a store, not a HEAD request per object); an
    input the listing does not show as a file (a folder: a code repository) is stat'ed on its own."""
    paths = sorted(storage.absolute(p) for p in inputs)
    listed: dict[str, ObjectInfo] = {}
    for folder in sorted({split(p)[0] for p in paths}, key=lambda f: f.location):
        listed.update({o.path: o for o in folder.list(recursive=False, hidden=True)})
    return listing_fingerprint([listed.get(p) or stat(p) for p in paths], config)


def source_config(source: str, config_dir: str | None) -> dict[str, Any]:
    """The default config merged with ``config_dir/<source>.yaml`` when that file exists."""
    user = os.path.join(config_dir, f"{source}.yaml") if config_dir else None
    return load_config(source, user if user and os.path.exists(user) else None)


def run_source(
    source: str, config: dict[str, Any], output: str, state: dict[str, str], executor: str
) -> bool:
    """Run one source unless unchanged; returns whether it ran (its outputs may have changed)."""
    from pipelines.runner import run_recipe

    recipe = build_recipe(source, config)
    spec = resolve_path(config.get("input") or "")
    if not spec:
        raise ValueError(f"{source}: the config names no input; set `input:` in its config")
    inputs = recipe.reader.discover(spec)
    if not inputs:
        raise FileNotFoundError(f"{source}: no inputs found at {spec}; fix `input:` in its config")
    fp = fingerprint(config, inputs)
    layout = SourceLayout(output, source)
    done = {o.path for o in layout.folder.child("_done").list(suffix=".json", recursive=False)}  # one listing
    all_done = all(layout.done_path(input_key(p)) in done for p in inputs)
    if state.get(source) == fp and all_done and layout.folder.exists("summary.json"):
        log.info("%s: unchanged (%d inputs, fingerprint %s): skipped", source, len(inputs), fp)
        return False
    result = run_recipe(recipe, spec, output, executor=executor, progress=False)
    s = result.summary
    log.info(
        "%s: %d inputs, %d processed, %d already done; read %d kept %d rejected %d; %.1f s",
        source,
        result.inputs,
        result.processed,
        result.already_done,
        s["read"],
        s["kept"],
        s["rejected"],
        result.seconds,
    )
    for err in s.get("errors", [])[:5]:
        log.warning("%s: input error (recorded, not fatal): %s", source, err)
    state[source] = fp
    return True


def stages(names: list[str] | None) -> list[str]:
    """Mixture stages to build: the shipped ``mixtures/*.yaml`` names, or ``names`` (a name or a YAML path each)."""
    found = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(MIXTURE_DIR, "*.yaml")))
    if not names:
        return found
    unknown = [n for n in names if n not in found and not n.endswith((".yaml", ".yml"))]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}: give one of {', '.join(found)} or a mixture YAML path")
    return names


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _yaml_digest(stage: str) -> str:
    path = stage if stage.endswith((".yaml", ".yml")) else os.path.join(MIXTURE_DIR, f"{stage}.yaml")
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:20]
    except OSError:
        return "missing"


def _load_state(folder: Folder) -> dict[str, Any]:
    if not folder.exists(STATE):
        return {"sources": {}, "stages": {}}
    state = folder.read_json(STATE)
    if "sources" not in state:  # the first format: {source: fingerprint}
        state = {"sources": state, "stages": {}}
    state.setdefault("stages", {})
    return state


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip() or repr(exc)}"


def build_stages(
    output: str, names: list[str], state: dict[str, Any], force: bool, strict: bool
) -> tuple[list[str], list[str]]:
    """Rebuild each mixture stage that is stale or failed last time, then the report; returns (failed, rebuilt)."""
    from mixtures.cli import build, empty_is_error, format_manifest
    from mixtures.spec import EmptyStage
    from pipelines.report.build import build_report

    sources_fp = _digest(state["sources"], state.get("generation", 0))
    failures: list[str] = []
    rebuilt: list[str] = []
    for stage in names:
        key = f"mixture:{stage}"
        fp = _digest(sources_fp, _yaml_digest(stage), strict)
        last = state["stages"].get(key, {})
        if not force and last.get("fingerprint") == fp and last.get("status") in ("ok", "empty"):
            log.info("mixture %s: up to date (%s)", stage, last["status"])
            continue
        if last.get("status") == "failed":
            log.info("mixture %s: retrying (failed last time: %s)", stage, last.get("error"))
        yaml_path = stage if stage.endswith((".yaml", ".yml")) else None
        name = None if yaml_path else stage
        try:
            manifest = build(output, name, yaml_path)
            status, error = "ok", None
            log.info("mixture %s: built\n%s", stage, format_manifest(manifest))
            if not manifest["decontamination"].get("enabled"):
                log.warning("mixture %s: %s", stage, manifest["decontamination"]["warning"])
        except EmptyStage as exc:
            if strict or empty_is_error(name, yaml_path, False):
                status, error = "failed", _reason(exc)
                log.error("mixture %s: FAILED (empty, and empty stages are errors here): %s", stage, exc)
            else:
                status, error = "empty", None
                log.warning("%s", exc)
        except Exception as exc:  # noqa: BLE001 - a broken stage must not stop the others; retried next run
            status, error = "failed", _reason(exc)
            log.error("mixture %s: FAILED: %s", stage, error)
            log.debug("mixture %s", stage, exc_info=True)
        state["stages"][key] = {"status": status, "fingerprint": fp, "error": error}
        rebuilt.append(key)
        if status == "failed":
            failures.append(key)
    last = state["stages"].get("report", {})
    fp = _digest(sources_fp, {k: v for k, v in state["stages"].items() if k != "report"})
    if force or rebuilt or last.get("status") != "ok" or last.get("fingerprint") != fp:
        try:
            log.info("report: %s", build_report(output))
            state["stages"]["report"] = {"status": "ok", "fingerprint": fp, "error": None}
        except Exception as exc:  # noqa: BLE001 - retried next run
            log.error("report: FAILED: %s", _reason(exc))
            state["stages"]["report"] = {"status": "failed", "fingerprint": fp, "error": _reason(exc)}
            failures.append("report")
        rebuilt.append("report")
    return failures, rebuilt


def run_cron(
    output: str,
    sources: list[str],
    stage_names: list[str] | None,
    config_dir: str | None,
    executor: str,
    force: bool = False,
    strict: bool = False,
) -> int:
    """Everything, in order; returns the exit status (0 ok, 1 something failed: see the ERROR lines)."""
    folder = Folder(output).child("_cron")
    state = _load_state(folder) if not force else {"sources": {}, "stages": {}}
    failures: list[str] = []
    changed: list[str] = []
    for source in sources:
        try:
            if run_source(source, source_config(source, config_dir), output, state["sources"], executor):
                changed.append(source)
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
            log.error("%s: FAILED: %s", source, _reason(exc))
            log.debug("%s", exc, exc_info=True)
            failures.append(source)
            state["sources"].pop(source, None)  # retried next time
        folder.write_json(STATE, state)
    if changed:  # the curated output changed: every stage is stale, even where fingerprints repeat
        state["generation"] = state.get("generation", 0) + 1
    try:
        stage_failures, rebuilt = build_stages(output, stages(stage_names), state, force, strict)
    except Exception as exc:  # noqa: BLE001 - e.g. an unknown stage name: say it, fail the run
        log.error("mixtures: FAILED: %s", _reason(exc))
        stage_failures, rebuilt = ["mixtures"], []
    folder.write_json(STATE, state)
    failures += stage_failures
    if not changed and not rebuilt and not failures:
        log.info("nothing changed since the last run: mixtures and report left as they are")
    if failures:
        log.error("cron run finished with failures: %s (retried on the next run)", ", ".join(failures))
        return 1
    log.info(
        "cron run finished: %d source(s) changed (%s); rebuilt: %s",
        len(changed),
        ", ".join(changed) or "none",
        ", ".join(rebuilt) or "nothing",
    )
    return 0


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "cron",
        "the unattended run: every source, then mixtures and report",
        run_cron_command,
    )
    parser.add_argument("--output", default="output", help="a path or an s3:// / gs:// URI")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated (default: all six)")
    parser.add_argument(
        "--stages",
        default=None,
        help="mixture stages, comma-separated: shipped names or YAML paths (default: every mixtures/*.yaml)",
    )
    parser.add_argument(
        "--config-dir", default=None, help="folder of <source>.yaml copies merged over the defaults"
    )
    parser.add_argument(
        "--log",
        default=None,
        help="local log file, appended (default OUTPUT/_cron/cron.log; on a bucket OUTPUT/_cron/logs/, one per run)",
    )
    parser.add_argument(
        "--executor", choices=["ray", "local"], default=os.environ.get("WINNOW_EXECUTOR", "ray")
    )
    parser.add_argument(
        "--wait", action="store_true", help="queue behind a cron run still going instead of exiting"
    )
    parser.add_argument(
        "--force", action="store_true", help="run every source and rebuild mixtures regardless"
    )
    parser.add_argument(
        "--strict", action="store_true", help="a mixture stage that selects nothing is a failure, not 'empty'"
    )


def run_cron_command(args: argparse.Namespace) -> int:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        print(f"winnow cron: unknown source(s) {unknown}; known: {', '.join(SOURCES)}", file=sys.stderr)
        return 2
    log_path = args.log or default_log(args.output)
    t0 = time.perf_counter()
    with run_log(log_path):
        log.info(
            "cron run started (pid %d): sources %s, output %s",
            os.getpid(),
            ",".join(sources),
            storage.absolute(args.output),
        )
        try:
            with run_lock(storage.join(args.output, "_cron"), wait=args.wait):
                stage_names = args.stages.split(",") if args.stages else None
                rc = run_cron(
                    args.output, sources, stage_names, args.config_dir, args.executor, args.force, args.strict
                )
        except LockedError as exc:
            log.error("%s", exc)
            print(f"winnow cron: {exc}", file=sys.stderr)
            return 2
        finally:
            log.info("cron run took %.1f s", time.perf_counter() - t0)
    print(console_summary(args.output, sources, rc, log_path))
    return rc


def console_summary(output: str, sources: list[str], rc: int, log_path: str) -> str:
    """What a person running ``make cron`` sees: each source and stage with its state, and where the log is."""
    state = _load_state(Folder(output).child("_cron"))
    lines = [f"winnow cron: {'ok' if rc == 0 else 'FAILED (retried on the next run)'}"]
    lines.append(
        "  sources: " + ", ".join(f"{s} {'ok' if s in state['sources'] else 'FAILED'}" for s in sources)
    )
    for key, st in sorted(state["stages"].items()):
        lines.append(f"  {key}: {st['status']}" + (f": {st['error']}" if st.get("error") else ""))
    lines.append(f"  log: {storage.absolute(log_path)}")
    return "\n".join(lines)


def default_log(output: str) -> str:
    """``OUTPUT/_cron/cron.log`` (appended) locally; on an object store one log object per run."""
    if not storage.is_uri(output):
        return os.path.join(output, "_cron", "cron.log")
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return storage.join(output, "_cron", "logs", f"{stamp}-{socket.gethostname()}-{os.getpid()}.log")


@contextlib.contextmanager
def run_log(path: str) -> Iterator[None]:
    """:func:`log_to_file` for the block; a log on an object store is written to a local file, then uploaded
    whole (atomically) when the block ends, however it ends."""
    if not storage.is_uri(path):
        with log_to_file(path):
            yield
        return
    with tempfile.TemporaryDirectory(prefix="winnow-cron-") as tmp:
        local = os.path.join(tmp, "cron.log")
        try:
            with log_to_file(local):
                yield
        finally:
            folder, name = split(path)
            try:
                with open(local, "rb") as f:
                    folder.write_bytes(name, f.read())
            except OSError as exc:  # the run's outcome stands; only its log is lost
                log.error("could not write the cron log to %s: %s", path, exc)
