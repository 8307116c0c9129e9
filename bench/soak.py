"""Soak: all six sources over good and hostile inputs, the driver killed (SIGKILL) at random moments on a machine
loaded by CPU burners, rerun until done; the result must equal a quiet uninterrupted run.

Compared: per source, the sorted (id, sha1 of text, reason) of every docs/ and rejected/ row (content, not file
bytes).  Run by hand::

    python -m bench.soak [--quick] [--executor local|ray] [--kills 3] [--burners N] [--seed 1] [--work DIR]

prints one JSON report (cases, kills, inputs done before each kill, equal or not) and exits 1 on any difference.
``tests/test_soak.py`` runs the quick version.  Inputs: the test fixtures of each source (good) and the hostile
cases of the operations tests plus a few more written here (a truncated copy of a good input, an empty file, a file
name that is not UTF-8).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
FIXTURES = os.path.join(TESTS, "fixtures")
DRIVER = os.path.join(TESTS, "helpers", "ops_driver.py")
SOURCES = ("commoncrawl", "github", "books", "arxiv", "stackexchange", "wikipedia")
#: hostile cases too slow for the quick version (bombs are bounded, but take seconds to reach their caps)
SLOW_CASES = ("bomb", "huge", "longline", "macro-loop")
#: files of a fixture folder that are not inputs
NOT_INPUTS = ("make_fixtures.py", "expected.json")

log = logging.getLogger("soak")


def build_inputs(root: str, quick: bool) -> dict[str, list[str]]:
    """``root/<source>/``: fixtures + hostile cases; returns the hostile case names per source."""
    sys.path.insert(0, REPO)
    from tests.helpers.ops_hostile import build_cases

    hostile_root = os.path.join(root, ".hostile")
    cases = build_cases(hostile_root)
    names: dict[str, list[str]] = {}
    for source in SOURCES:
        dest = os.path.join(root, source)
        os.makedirs(dest, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(FIXTURES, source))):
            if name not in NOT_INPUTS:
                _copy(os.path.join(FIXTURES, source, name), os.path.join(dest, name))
        folder = os.path.join(hostile_root, source)
        for top in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:  # real names (some not UTF-8)
            if quick and any(s in top for s in SLOW_CASES):
                continue
            _copy(os.path.join(folder, top), os.path.join(dest, f"hostile-{top}"))
        names[source] = [
            n for n in sorted(cases.get(source, {})) if not (quick and any(s in n for s in SLOW_CASES))
        ]
        names.setdefault(source, []).extend(_more_hostile(dest))
    shutil.rmtree(hostile_root)
    return names


def _copy(src: str, dest: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest)


def _more_hostile(folder: str) -> list[str]:
    """A truncated copy of the first good file input, an empty file and a copy under a name that is not UTF-8."""
    files = sorted(
        n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)) and "hostile" not in n
    )
    if not files:
        return []
    first = os.path.join(folder, files[0])
    data = open(first, "rb").read()
    stem, ext = _split_ext(files[0])
    made = {
        f"hostile-cut-{stem}{ext}": data[: max(1, len(data) * 2 // 3)],
        f"hostile-empty{ext}": b"",
    }
    for name, content in made.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    bad = os.path.join(folder, f"hostile-caf\udce9-{stem}{ext}")
    if not _names_encodable(bad):  # the input key cannot name it yet: leave the case out, and say so
        log.warning("left out: a file name that is not UTF-8 (input_key cannot encode %r)", bad)
        return list(made)
    with open(os.fsencode(bad), "wb") as f:
        f.write(data)
    return [*made, "hostile-non-utf8-name"]


def _names_encodable(path: str) -> bool:
    from pipelines.core.layout import input_key

    try:
        input_key(path)
        return True
    except UnicodeError:
        return False


def _split_ext(name: str) -> tuple[str, str]:
    for ext in (".warc.gz", ".xml.bz2", ".tar.gz", ".txt", ".xml", ".tex", ".gz", ".zip"):
        if name.endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def write_configs(root: str) -> dict[str, str]:
    """Per source a config: CommonCrawl without the trained models (not in a fresh clone) and small batches so
    that kills land between batches too."""
    from pipelines.sources.commoncrawl import without_models

    paths = {}
    for source in SOURCES:
        config: dict[str, Any] = {"reader": {"batch_size": 4}}
        if source == "commoncrawl":
            config.update(without_models())
        paths[source] = os.path.join(root, f"{source}.yaml")
        with open(paths[source], "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
    return paths


def digest(out: str, source: str) -> dict[str, str]:
    """sha1 over the sorted (id, sha1(text), reason) rows of docs/ and rejected/, with the row counts."""
    result = {}
    for kind in ("docs", "rejected"):
        folder = os.path.join(out, source, kind)
        rows = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            table = pq.read_table(os.path.join(folder, name), columns=None)
            cols = table.column_names
            for r in table.select([c for c in ("id", "text", "reason") if c in cols]).to_pylist():
                text = (r.get("text") or "").encode("utf-8", "surrogatepass")
                rows.append((r["id"], hashlib.sha1(text).hexdigest(), r.get("reason")))
        rows.sort(key=lambda r: (r[0], r[1], r[2] or ""))
        blob = json.dumps(rows, ensure_ascii=True).encode()
        result[kind] = f"{len(rows)} rows sha1 {hashlib.sha1(blob).hexdigest()[:16]}"
    return result


def _driver(
    source: str, config: str, inputs: str, out: str, executor: str, env: dict[str, str]
) -> subprocess.Popen:
    """The driver, its stderr in a file: after a kill -9, a child that outlived it would hold a pipe open."""
    err = tempfile.TemporaryFile(mode="w+", prefix="soak-stderr-")
    proc = subprocess.Popen(
        [sys.executable, DRIVER, source, config, inputs, out, executor],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        cwd=REPO,
        env=env,
    )
    proc.err_file = err  # type: ignore[attr-defined]
    return proc


def _stderr(proc: subprocess.Popen) -> str:
    proc.err_file.seek(0)  # type: ignore[attr-defined]
    text = proc.err_file.read()  # type: ignore[attr-defined]
    proc.err_file.close()  # type: ignore[attr-defined]
    return text


def _orphans(children: list[Any], wait_s: float = 15.0) -> int:
    """How many of a killed driver's descendants are still alive ``wait_s`` later (then killed, so they do not
    pile up over the soak)."""
    import psutil

    _, alive = psutil.wait_procs(children, timeout=wait_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(alive)


def run_once(source: str, config: str, inputs: str, out: str, executor: str, env: dict[str, str]) -> float:
    """An uninterrupted run; returns its seconds after start-up (READY)."""
    proc = _driver(source, config, inputs, out, executor, env)
    assert proc.stdout.readline().strip() == "READY", _stderr(proc)[-3000:]
    t0 = time.perf_counter()
    proc.wait(timeout=1800)
    proc.stdout.close()
    stderr = _stderr(proc)
    if proc.returncode:
        raise RuntimeError(f"{source}: quiet run failed ({proc.returncode}):\n{stderr[-3000:]}")
    return time.perf_counter() - t0


def soak_source(
    source: str,
    config: str,
    inputs: str,
    out: str,
    executor: str,
    env: dict[str, str],
    kills: int,
    rng: random.Random,
    span_s: float,
) -> list[dict[str, Any]]:
    """Start, kill at a random moment in ``[0, span_s]``, repeat ``kills`` times, then run to completion."""
    attempts = []
    for attempt in range(kills + 1):
        proc = _driver(source, config, inputs, out, executor, env)
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{source}: driver did not start: {_stderr(proc)[-3000:]}")
        delay = rng.uniform(0, span_s) if attempt < kills else None
        orphans = 0
        try:
            proc.wait(timeout=delay if delay is not None else 1800)
            finished = True
        except subprocess.TimeoutExpired:
            import psutil

            children = []
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGKILL)  # the driver only, as the OOM killer or a reboot would
            proc.wait(timeout=60)
            finished = False
            orphans = _orphans(children)
        stderr = _stderr(proc)
        proc.stdout.close()
        done_dir = os.path.join(out, source, "_done")
        done = len(os.listdir(done_dir)) if os.path.isdir(done_dir) else 0
        log.info(
            "%s attempt %d: %s, %d input(s) done",
            source,
            attempt + 1,
            "finished" if finished else f"killed after {delay:.1f} s",
            done,
        )
        attempts.append(
            {
                "killed_after_s": None if finished else round(delay, 2),
                "inputs_done": done,
                "exit": proc.returncode if finished else "SIGKILL",
                "orphans": orphans,  # descendants alive 15 s after the kill
            }
        )
        if finished:
            if proc.returncode:
                raise RuntimeError(f"{source}: run failed ({proc.returncode}):\n{stderr[-3000:]}")
            break
    return attempts


@contextlib.contextmanager
def cpu_burners(n: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


def soak(work: str, quick: bool, executor: str, kills: int, burners: int, seed: int) -> dict[str, Any]:
    inputs_root = os.path.join(work, "in")
    cases = build_inputs(inputs_root, quick)
    configs = write_configs(work)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="wsk-", dir="/tmp"))
    rng = random.Random(seed)
    report: dict[str, Any] = {
        "executor": executor,
        "burners": burners,
        "seed": seed,
        "quick": quick,
        "sources": {},
    }
    quiet_s = {}
    for source in SOURCES:
        log.info("%s: quiet run", source)
        quiet_s[source] = run_once(
            source,
            configs[source],
            os.path.join(inputs_root, source),
            os.path.join(work, "quiet"),
            executor,
            env,
        )
    with cpu_burners(burners):
        for source in SOURCES:
            attempts = soak_source(
                source,
                configs[source],
                os.path.join(inputs_root, source),
                os.path.join(work, "soaked"),
                executor,
                env,
                kills,
                rng,
                span_s=max(1.0, quiet_s[source] * 2),
            )
            quiet, soaked = (
                digest(os.path.join(work, "quiet"), source),
                digest(os.path.join(work, "soaked"), source),
            )
            report["sources"][source] = {
                "inputs": len(os.listdir(os.path.join(inputs_root, source))),
                "hostile_cases": cases.get(source, []),
                "quiet_run_s": round(quiet_s[source], 2),
                "attempts": attempts,
                "quiet": quiet,
                "soaked": soaked,
                "identical": quiet == soaked,
            }
    report["identical"] = all(s["identical"] for s in report["sources"].values())
    report["hostile_cases"] = sum(len(s["hostile_cases"]) for s in report["sources"].values())
    report["orphans"] = sum(a["orphans"] for s in report["sources"].values() for a in s["attempts"])
    report["kills"] = sum(a["exit"] == "SIGKILL" for s in report["sources"].values() for a in s["attempts"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="leave out the slow hostile cases (bombs, huge lines)"
    )
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--kills", type=int, default=3, help="kills per source before the run to completion")
    parser.add_argument("--burners", type=int, default=(os.cpu_count() or 1) + 1, help="CPU burner processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = args.work or tempfile.mkdtemp(prefix="winnow-soak-")
    try:
        report = soak(work, args.quick, args.executor, args.kills, args.burners, args.seed)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
