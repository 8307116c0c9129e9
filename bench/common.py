"""Shared helpers for benchmarks: each ``bench/bench_<area>.py`` owns one section of ``bench/results.md``."""

from __future__ import annotations

import os
import platform
import re
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(BENCH_DIR, "results.md")
WORK = os.path.join(BENCH_DIR, "generated")  # generated inputs (git-ignored)
SHARED = os.path.abspath(os.environ.get("WINNOW_SHARED", os.path.join(BENCH_DIR, "..", "..", "shared")))
CORPUS = os.path.join(SHARED, "corpus")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def write_section(area: str, markdown: str) -> None:
    """Replace (or append) the section between ``<!-- area:start -->`` and ``<!-- area:end -->`` in results.md."""
    start, end = f"<!-- {area}:start -->", f"<!-- {area}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = open(RESULTS, encoding="utf-8").read() if os.path.exists(RESULTS) else "# Winnow benchmarks\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    with open(RESULTS, "w", encoding="utf-8") as f:
        f.write(text)


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak RSS of this process and its children, from /proc (VmHWM), in MiB."""
    import psutil

    proc = psutil.Process(pid or os.getpid())
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return round(total, 1)


SOURCE_HEADERS = ["source", "inputs", "docs read", "kept", "MB in", "seconds", "docs/s", "MB/s"]


def source_row(source: str, config: dict, folder: str, input_mb: float) -> list[object]:
    """Run ``source``'s recipe over ``folder`` in one process (corpus stages included) and time it: one table row.
    documents/s counts documents read (kept + rejected); MB/s counts ``input_mb``."""
    import tempfile

    from pipelines.runner import run_recipe
    from pipelines.sources.registry import build_recipe

    recipe = build_recipe(source, config)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        s = run_recipe(recipe, folder, out, executor="local", progress=False).summary
        dt = time.perf_counter() - t0
    return [
        source,
        s["inputs"],
        s["read"],
        s["kept"],
        f"{input_mb:.2f}",
        f"{dt:.2f}",
        f"{s['read'] / dt:.1f}",
        f"{input_mb / dt:.2f}",
    ]


class TreeMemory:
    """Peak memory of this process and all its descendants, sampled every ``interval`` seconds while running.

    ``pss_mb``: the peak of the summed PSS (a page shared by k processes, e.g. after fork, counts 1/k in each: the
    sum is the memory the run really holds); ``max_rss_mb``: the largest peak RSS of any single process (its VmHWM,
    read while it lives, and RUSAGE_CHILDREN for processes that ended).
    """

    def __init__(self, interval: float = 0.1):
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.pss_kb = 0
        self.hwm_kb = 0
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, start time): user + system seconds, last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _fields(pid: int, path: str, names: tuple[str, ...]) -> dict[str, int]:
        out = {}
        try:
            with open(f"/proc/{pid}/{path}") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in names:
                        out[key] = int(line.split()[1])
        except OSError:
            pass
        return out

    def sample(self) -> None:
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return
        pss = 0
        for p in procs:
            pss += self._fields(p.pid, "smaps_rollup", ("Pss",)).get("Pss", 0)
            self.hwm_kb = max(self.hwm_kb, self._fields(p.pid, "status", ("VmHWM",)).get("VmHWM", 0))
            try:
                t = p.cpu_times()
                self.cpu[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        self.pss_kb = max(self.pss_kb, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import resource

        self._stop.set()
        self._thread.join()
        self.sample()
        self.hwm_kb = max(self.hwm_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)

    @property
    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every process seen, at its last sample: other users' load does not
        count; a process that ends between samples loses up to ``interval`` of its time."""
        return round(sum(self.cpu.values()), 2)

    @property
    def pss_mb(self) -> float:
        return round(self.pss_kb / 1024, 1)

    @property
    def max_rss_mb(self) -> float:
        return round(self.hwm_kb / 1024, 1)
