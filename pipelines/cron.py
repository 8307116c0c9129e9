"""``winnow cron`` (``make cron``): the unattended run — every configured source, then mixtures and the report.

Built for cron: one log file per OUTPUT (appended), exit status 0 when everything went through and 1 when anything
failed (the other sources still run), 2 when another cron run holds OUTPUT.  When nothing changed it does nothing:
a source whose inputs (path, size, mtime) and settings are the same as at its last successful run, with every input
marked done, is not even started, and the mixtures and report are rebuilt only when some source ran.

The per-source dedup passes (CommonCrawl MinHash, GitHub exact, books near-dup) are corpus stages of the source
runs, so "then dedup" happens inside each source's run, after its last input.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
import sys
import time
from typing import Any

from pipelines.core import storage
from pipelines.core.layout import SourceLayout, input_key, write_json_atomic
from pipelines.core.locks import LockedError, run_lock
from pipelines.sources.registry import SOURCES, build_recipe, load_config, resolve_path

log = logging.getLogger("winnow.cron")
MIXTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mixtures")


def fingerprint(config: dict[str, Any], inputs: list[str]) -> str:
    """Hash of a source's settings and of its inputs' identities (absolute path, size, mtime)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for path in sorted(inputs):
        if storage.is_uri(path):  # an input on object storage (OUTPUT itself must be local for cron)
            h.update(f"\0{path}\0{storage.getsize(path)}\0{storage.mtime_ns(path)}".encode())
            continue
        st = os.stat(path)
        h.update(f"\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


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
    all_done = all(layout.is_done(input_key(p)) for p in inputs)
    if state.get(source) == fp and all_done and os.path.exists(os.path.join(layout.base, "summary.json")):
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
    found = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(MIXTURE_DIR, "*.yaml")))
    return [n for n in found if not names or n in names]


def run_cron(
    output: str,
    sources: list[str],
    stage_names: list[str] | None,
    config_dir: str | None,
    executor: str,
    force: bool = False,
) -> int:
    """Everything, in order; returns the exit status."""
    state_path = os.path.join(output, "_cron", "state.json")
    state: dict[str, str] = {}
    if os.path.exists(state_path) and not force:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    failures: list[str] = []
    changed: list[str] = []
    for source in sources:
        try:
            if run_source(source, source_config(source, config_dir), output, state, executor):
                changed.append(source)
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
            log.error("%s: FAILED: %s: %s", source, type(exc).__name__, exc)
            log.debug("%s", exc, exc_info=True)
            failures.append(source)
            state.pop(source, None)  # retried next time
        write_json_atomic(state_path, state)
    if changed or force:
        from mixtures.cli import main as mixture_main
        from mixtures.report import main as report_main

        for stage in stages(stage_names):
            rc = mixture_main(["--output", output, "--stage", stage])
            log.info("mixture %s: exit %s", stage, rc)
            if rc:
                failures.append(f"mixture:{stage}")
        rc = report_main(["--output", output])
        log.info("report: exit %s", rc)
        if rc:
            failures.append("report")
    else:
        log.info("nothing changed since the last run: mixtures and report left as they are")
    if failures:
        log.error("cron run finished with failures: %s", ", ".join(failures))
        return 1
    log.info("cron run finished: %d source(s) changed (%s)", len(changed), ", ".join(changed) or "none")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="winnow cron", description="run every source, then mixtures and report"
    )
    parser.add_argument("--output", default="output")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated (default: all six)")
    parser.add_argument(
        "--stages", default=None, help="mixture stages, comma-separated (default: mixtures/*.yaml)"
    )
    parser.add_argument(
        "--config-dir", default=None, help="folder of <source>.yaml copies merged over the defaults"
    )
    parser.add_argument("--log", default=None, help="log file (default OUTPUT/_cron/cron.log), appended")
    parser.add_argument(
        "--executor", choices=["ray", "local"], default=os.environ.get("WINNOW_EXECUTOR", "ray")
    )
    parser.add_argument(
        "--wait", action="store_true", help="queue behind a cron run still going instead of exiting"
    )
    parser.add_argument(
        "--force", action="store_true", help="run every source and rebuild mixtures regardless"
    )
    args = parser.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        parser.error(f"unknown source(s) {unknown}; known: {', '.join(SOURCES)}")
    log_path = args.log or os.path.join(args.output, "_cron", "cron.log")
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log.info(
        "cron run started (pid %d): sources %s, output %s",
        os.getpid(),
        ",".join(sources),
        os.path.abspath(args.output),
    )
    t0 = time.perf_counter()
    try:
        with run_lock(os.path.join(args.output, "_cron"), wait=args.wait):
            stage_names = args.stages.split(",") if args.stages else None
            rc = run_cron(args.output, sources, stage_names, args.config_dir, args.executor, args.force)
    except LockedError as exc:
        log.error("%s", exc)
        print(f"winnow cron: {exc}", file=sys.stderr)
        return 2
    finally:
        log.info("cron run took %.1f s", time.perf_counter() - t0)
        root.removeHandler(handler)
        handler.close()
    return rc
