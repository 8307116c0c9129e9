"""Main-text extraction from HTML with trafilatura (a transform: it rewrites ``text``).

Settings match datatrove's ``Trafilatura`` extractor (favor_precision, no comments, deduplicate) so results agree.
datatrove isolates each call in a sandbox process and pipes the HTML through it; here each call is bounded
in-process (Ray runs tasks on the worker's main thread), which removes one copy of every page.  Pages above
``max_html_bytes`` are rejected rather than parsed: lxml's time and memory grow with them.  trafilatura's paragraph
dedup cache is cleared at the start of each input, so dedup acts within one input and results are reproducible.

The time limit counts the CPU time of the extracting thread, not wall-clock time: on a loaded machine a page gets
the same budget as on a quiet one, so which pages are rejected ``extract:timeout`` does not depend on machine load and
a rerun after a kill reproduces an uninterrupted run.  A wall-clock limit far above it (``wall_backstop_s``) is only a
backstop for a thread that makes no progress at all; pages it stops are rejected ``extract:timeout_wall``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from pipelines.core.steps import Step, StepResult, set_column, texts

log = logging.getLogger(__name__)


class ExtractionTimeout(Exception):
    """The extraction used up its CPU budget (``kind == "cpu"``) or hit the wall-clock backstop (``"wall"``)."""

    def __init__(self, kind: str = "cpu"):
        super().__init__(kind)
        self.kind = kind


@dataclass
class _Job:
    thread_ident: int
    clock: int
    cpu_deadline: float
    wall_deadline: float
    fired: str | None = None
    raised: bool = False
    inside: bool = True


class _Watchdog:
    """One daemon thread per process that watches the CPU clock of the thread running a limited call and sends it
    SIGALRM when the budget is spent.  It sleeps for the remaining budget in wall time: a thread's CPU time cannot
    grow faster than wall time, so it never wakes late, and it wakes rarely."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.job: _Job | None = None
        self.pid = os.getpid()
        threading.Thread(target=self._loop, name="winnow-extract-watchdog", daemon=True).start()

    def arm(self, job: _Job) -> None:
        with self.cond:
            self.job = job
            self.cond.notify()

    def disarm(self, job: _Job) -> None:
        with self.cond:  # once this returns no signal is sent for ``job`` any more
            job.inside = False
            if self.job is job:
                self.job = None

    def _loop(self) -> None:
        with self.cond:
            while True:
                job = self.job
                if job is None:
                    self.cond.wait()
                    continue
                cpu_left = job.cpu_deadline - time.clock_gettime(job.clock)
                wall_left = job.wall_deadline - time.monotonic()
                if cpu_left <= 0 or wall_left <= 0:
                    job.fired = "cpu" if cpu_left <= 0 else "wall"
                    self.job = None
                    signal.pthread_kill(job.thread_ident, signal.SIGALRM)
                    continue
                self.cond.wait(min(cpu_left, wall_left) + 0.001)


_watchdog: _Watchdog | None = None
_watchdog_lock = threading.Lock()


def _get_watchdog() -> _Watchdog:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog.pid != os.getpid():  # a forked child has no watchdog thread
            _watchdog = _Watchdog()
        return _watchdog


@contextlib.contextmanager
def time_limit(cpu_seconds: float, wall_backstop_s: float | None = None) -> Iterator[None]:
    """Raise ExtractionTimeout once the calling thread has used ``cpu_seconds`` of CPU time inside the block, or
    ``wall_backstop_s`` of wall time (default: 20x the CPU limit, at least 60 s).  Main thread only (the signal
    lands there); elsewhere no limit is applied.  Python code is interrupted at once; a long call inside C (lxml)
    is interrupted when it returns to Python, as with any signal."""
    if cpu_seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    backstop = wall_backstop_s if wall_backstop_s is not None else max(60.0, 20 * cpu_seconds)
    ident = threading.get_ident()
    clock = time.pthread_getcpuclockid(ident)
    job = _Job(ident, clock, time.clock_gettime(clock) + cpu_seconds, time.monotonic() + backstop)

    def _raise(signum, frame):  # noqa: ARG001
        if job.inside and job.fired and not job.raised:
            job.raised = True
            raise ExtractionTimeout(job.fired)

    old = signal.signal(signal.SIGALRM, _raise)
    watchdog = _get_watchdog()
    watchdog.arm(job)
    try:
        yield
    finally:
        try:
            watchdog.disarm(job)
        finally:  # restored even if the alarm lands during disarm
            signal.signal(signal.SIGALRM, old)
    if job.fired and not job.raised:  # the budget ran out as the call returned: the same verdict either way
        raise ExtractionTimeout(job.fired)


@dataclass
class ExtractText(Step):
    """HTML rows (``content_format == 'html'``) → main text; other rows pass through unchanged."""

    kind: ClassVar[str] = "transform"
    reads: ClassVar[tuple[str, ...]] = ("text", "content_format")

    favor_precision: bool = True
    deduplicate: bool = True
    #: CPU seconds one page may take (the thread's CPU time, so the verdict does not depend on machine load)
    timeout_s: float = 5.0
    #: wall-clock backstop in seconds (None: 20x ``timeout_s``, at least 60 s); far above any CPU limit
    wall_backstop_s: float | None = None
    max_html_bytes: int = 5_000_000
    speedups: bool = (
        True  # filters/patches/trafilatura_speedups.py: same output, ~30% less CPU (399 real pages)
    )

    def setup(self) -> None:
        # trafilatura logs a warning for every page it finds nothing in; the reason column already says so
        logging.getLogger("trafilatura").setLevel(logging.ERROR)
        if self.speedups:
            from filters.patches import trafilatura_speedups

            trafilatura_speedups.install()

    def start_input(self, path: str) -> None:
        # trafilatura's `deduplicate` remembers paragraphs in a process-wide LRU: without this reset a page's text
        # would depend on which pages the same worker saw before (resume and Ray-vs-local would differ)
        from trafilatura.deduplication import LRU_TEST

        LRU_TEST.clear()

    def process(self, batch: pa.Table) -> StepResult:
        from trafilatura import extract

        formats = batch.column("content_format").to_pylist()
        out: list[str | None] = []
        reasons: list[str | None] = []
        changed = 0
        for html, fmt in zip(texts(batch), formats, strict=True):
            if fmt != "html":
                out.append(html)
                reasons.append(None if html.strip() else "extract:empty")
                continue
            if len(html) > self.max_html_bytes:
                out.append(html)
                reasons.append("extract:html_too_large")
                continue
            try:
                with time_limit(self.timeout_s, self.wall_backstop_s):
                    text = extract(
                        html,
                        favor_precision=self.favor_precision,
                        include_comments=False,
                        deduplicate=self.deduplicate,
                    )
            except ExtractionTimeout as exc:
                out.append(html)
                reasons.append("extract:timeout" if exc.kind == "cpu" else "extract:timeout_wall")
                continue
            except Exception as exc:  # noqa: BLE001 - a page that breaks the parser is a rejection, not a crash
                log.debug("trafilatura failed: %s", exc)
                out.append(html)
                reasons.append("extract:error")
                continue
            if not text:
                out.append(html)
                reasons.append("extract:no_text")
                continue
            out.append(text)
            reasons.append(None)
            changed += 1
        batch = set_column(batch, "text", out, pa.large_string())
        return StepResult(batch, reasons, changed)
