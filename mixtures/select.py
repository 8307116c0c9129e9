"""Entry selection of a mixture build: which documents each entry may sample, as per-partition totals.

One scan task per docs file (:func:`mixtures.tasks.scan_file`) counts tokens, checks benchmarks and applies every
entry's predicate to its file, writing the candidates as fixed-width rows into ``R`` candidate partitions (ranges of
the seeded rank hash of the id; :mod:`mixtures.partitions`).  Then tasks over the partitions do the per-candidate
work: duplicate ids across files keep the first file's copy (every copy of an id is in one partition),
``top_fraction`` keeps the best slice, whose cut the driver finds exactly from 256-bucket histograms of the rank
key (a few rounds; documents tied at the cut have their ids read, the smaller ids go in), and contaminated
documents leave.  The driver holds per entry and partition a few counts (and per contaminated or tied document its
row), never an array per candidate: its memory does not grow with the candidates (``bench_mixtures.py --driver``).

:func:`select_entries` returns one :class:`EntryState` per mixture entry; :mod:`mixtures.sampling` samples from it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from mixtures import store
from mixtures.decontam import NGramIndex
from mixtures.partitions import (
    ALL,
    RAW_KEYS,
    PartitionTask,
    PartitionTotals,
    cut_partition,
    dedup_partition,
    histogram_partition,
    tied_partition,
)
from mixtures.spec import MixtureError, MixtureSpec, SourceSpec
from mixtures.tasks import EntryQuery, ScanJob, ScanResult, column_list, entry_sql, scan_file
from mixtures.topics import TOPIC_COLUMN, TopicPlan
from pipelines.core.executor import Executor, TaskFailed

log = logging.getLogger(__name__)


@dataclass
class EntryState:
    """One mixture entry's available documents, as totals per candidate partition (in rank order)."""

    spec: SourceSpec
    status: str = "ok"
    note: str = ""
    candidates: int = 0
    contaminated: int = 0
    ranked_by: str | None = None
    decontam_rows: list[dict[str, Any]] = field(default_factory=list)
    has_topic: bool = False  # the source has a topic column (int16 codes in the partitions)
    # per group (ALL, and each topic code when has_topic): (documents, tokens) per candidate partition
    groups: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    topic_plan: TopicPlan | None = None  # the entry's per-topic targets (mixtures/topics.py)

    @property
    def size(self) -> int:
        return int(self.groups[ALL][0].sum()) if ALL in self.groups else 0

    @property
    def available(self) -> int:
        return int(self.groups[ALL][1].sum()) if ALL in self.groups else 0

    def topic_available(self) -> dict[int, int] | None:
        """Tokens per topic code (None: the source has no topic column)."""
        if not self.has_topic:
            return None
        return {t: int(self.groups[t][1].sum()) for t in sorted(self.groups) if t != ALL}

    @property
    def capacity(self) -> float:
        """Tokens the entry can give under its epoch cap (at its topic targets, when it has topic rules)."""
        if self.topic_plan is not None and self.topic_plan.applied:
            return self.topic_plan.capacity(self.spec.max_epochs)
        return self.available * self.spec.max_epochs


def origin_columns(con: duckdb.DuckDBPyConnection, docs: list[str]) -> tuple[tuple[str, str], ...]:
    """(name, DuckDB type) of every column over a source's docs files (their footers only, read with pyarrow on
    any storage; types widened as DuckDB's union_by_name does), n_tokens left out."""
    schema = pa.unify_schemas([store.read_schema(d) for d in docs], promote_options="permissive")
    con.register("_schema", schema.empty_table())
    rows = con.execute("DESCRIBE SELECT * FROM _schema").fetchall()
    con.unregister("_schema")
    return tuple((r[0], r[1]) for r in rows if r[0] != "n_tokens")


def _rank_column(spec: SourceSpec, columns: list[str]) -> str | None:
    return next((c for c in spec.rank_by if c in columns or c in spec.missing_columns), None)


def _query(spec: SourceSpec, columns: tuple[tuple[str, str], ...], stage: str) -> EntryQuery:
    names = [n for n, _ in columns] + ["n_tokens"]
    rank = _rank_column(spec, names) if spec.top_fraction is not None else None
    if spec.top_fraction is not None and rank is None:
        raise MixtureError(
            f"mixture {stage}: source {spec.name!r}: none of rank_by {list(spec.rank_by)} is a "
            f"column of {spec.origin} ({', '.join(names)})"
        )
    return EntryQuery(spec.name, spec.where, tuple(spec.missing_columns.items()), rank, TOPIC_COLUMN in names)


def _check(
    con: duckdb.DuckDBPyConnection,
    columns: tuple[tuple[str, str], ...],
    spec: SourceSpec,
    query: EntryQuery,
    stage: str,
) -> None:
    """Bind the entry's predicate against the source's columns here, so a typo fails once with the column list."""
    view = (
        f"(SELECT {column_list(columns, set())}, NULL::BIGINT AS n_tokens, NULL::BIGINT AS _row WHERE false)"
    )
    try:
        con.execute(entry_sql(view, {n for n, _ in columns} | {"n_tokens"}, query) + " LIMIT 0")
    except (duckdb.BinderException, duckdb.ParserException, duckdb.ConversionException) as exc:
        raise _predicate_error(stage, spec, columns, exc) from None


def _predicate_error(
    stage: str, spec: SourceSpec, columns: tuple[tuple[str, str], ...], exc: Exception
) -> MixtureError:
    names = [n for n, _ in columns] + ["n_tokens"]
    return MixtureError(
        f"mixture {stage}: source {spec.name!r} (from {spec.origin}): predicate {spec.where!r} does not apply "
        f"to its docs: {str(exc).splitlines()[0]}\n  columns of {spec.origin}: {', '.join(names)}\n"
        f"  (a column a source may lack can be given a value under missing_columns)"
    )


def scan(
    spec: MixtureSpec,
    docs: dict[str, list[str]],
    tokenizer: str,
    index: NGramIndex | None,
    executor: Executor,
    work: str,
    partitions: int,
) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[str, list[int]], list[ScanResult], list[str]]:
    """Check every entry's predicate, then run one scan task per docs file (candidates into ``work``).

    Returns (columns per origin, entry indices per origin, scan results in file order, files in file order)."""
    con = duckdb.connect()
    columns = {o: origin_columns(con, files) for o, files in docs.items() if files}
    by_origin: dict[str, list[int]] = {}
    queries: dict[int, EntryQuery] = {}
    for i, s in enumerate(spec.sources):
        if s.origin in columns:
            queries[i] = _query(s, columns[s.origin], spec.stage)
            _check(con, columns[s.origin], s, queries[i], spec.stage)
            by_origin.setdefault(s.origin, []).append(i)
    con.close()  # before the executor forks its pool: a child must not inherit a used DuckDB
    jobs, files = [], []
    for origin in sorted(by_origin):
        entries = tuple((i, queries[i]) for i in by_origin[origin])
        for path in docs[origin]:
            jobs.append(ScanJob(path, len(files), columns[origin], entries, spec.seed, work, partitions))
            files.append(path)
    task = partial(scan_file, tokenizer=tokenizer, index=index)  # on Ray: one copy of the index in the store
    try:
        results = executor.map(task, jobs, desc=f"mixture {spec.stage}: tokens and decontamination")
    except TaskFailed as exc:
        first = exc.failures[0][1]
        if isinstance(first, duckdb.Error):  # a predicate that binds but fails on a value (a bad cast)
            raise MixtureError(
                f"mixture {spec.stage}: a predicate failed on {exc.failures[0][0]}: {first}"
            ) from exc
        raise
    counted = sum(r.tokens_counted for r in results)
    checked = sum(r.decontam_checked for r in results)
    if counted or checked:
        log.info(
            "mixture %s: counted tokens of %d documents, checked %d docs file(s) against benchmarks",
            spec.stage,
            counted,
            checked,
        )
    return columns, by_origin, results, files


@dataclass
class _Search:
    """The radix search of one entry's cut: the top ``bits`` of the key are ``prefix``; the cut is the
    ``want``-th smallest key under it; ``less`` keys lie below the prefix."""

    want: int
    prefix: int = 0
    bits: int = 0
    less: int = 0
    raw: bool = False


def find_cuts(
    ex: Executor, work: str, wants: dict[int, int], holders: dict[int, list[int]], stage: str
) -> dict[int, tuple[int, int, int]]:
    """Per entry its cut: (the ``want``-th smallest rank key, keys below it, keys equal to it), exactly, from
    histograms of 8 more bits per round (the last round returns the few keys of the bucket itself)."""
    searches = {k: _Search(w) for k, w in wants.items()}
    out: dict[int, tuple[int, int, int]] = {}
    while searches:
        parts = sorted({p for k in searches for p in holders[k]})
        tasks = [
            PartitionTask(
                work,
                p,
                tuple((k, s.prefix, s.bits, s.raw) for k, s in searches.items() if p in holders[k]),
            )
            for p in parts
        ]
        results = ex.map(histogram_partition, tasks, desc=f"mixture {stage}: top_fraction cut")
        for k, s in list(searches.items()):
            got = [
                r[n]
                for t, r in zip(tasks, results, strict=True)
                for n, q in enumerate(t.requests)
                if q[0] == k
            ]
            if s.raw:
                keys = np.sort(np.concatenate(got))
                cut = keys[s.want - 1]
                lo, hi = np.searchsorted(keys, cut, "left"), np.searchsorted(keys, cut, "right")
                out[k] = (int(cut), s.less + int(lo), int(hi - lo))
                del searches[k]
                continue
            hist = np.sum(got, axis=0)
            cum = np.cumsum(hist)
            b = int(np.searchsorted(cum, s.want, "left"))
            before = int(cum[b - 1]) if b else 0
            s.less, s.want, s.prefix, s.bits = s.less + before, s.want - before, s.prefix << 8 | b, s.bits + 8
            if s.bits == 64:
                out[k] = (s.prefix, s.less, int(hist[b]))
                del searches[k]
            elif hist[b] <= RAW_KEYS:
                s.raw = True
    return out


def _read_ids(pairs: np.ndarray, files: list[str]) -> list[str]:
    """The ids of a few candidates ((file_no, row) pairs: a tie at a top_fraction cut), read from their files."""
    out: list[str] = [""] * len(pairs)
    for f in np.unique(pairs[:, 0]).tolist():
        at = np.flatnonzero(pairs[:, 0] == f)
        ids = store.read_table(files[f], columns=["id"]).column("id").take(pa.array(pairs[at, 1]))
        for k, v in zip(at.tolist(), ids.to_pylist(), strict=True):
            out[k] = v
    return out


def _tied(
    ex: Executor, work: str, k: int, key: int, need: int, holders: list[int], files: list[str]
) -> dict[int, list[tuple[int, int]]]:
    """The ``need`` documents of entry ``k`` at the cut key with the smallest ids, per partition."""
    tasks = [PartitionTask(work, p, ((k, key),)) for p in holders]
    found = ex.map(tied_partition, tasks, desc="mixture: ties at the cut")
    part = np.concatenate([np.full(len(r[0]), t.partition) for t, r in zip(tasks, found, strict=True)])
    pairs = np.concatenate([r[0] for r in found])
    ids = _read_ids(pairs, files)
    chosen: dict[int, list[tuple[int, int]]] = {}
    for i in sorted(range(len(ids)), key=ids.__getitem__)[:need]:
        chosen.setdefault(int(part[i]), []).append((int(pairs[i, 0]), int(pairs[i, 1])))
    return chosen


def select_entries(
    spec: MixtureSpec,
    docs: dict[str, list[str]],
    output: str,
    tokenizer: str,
    index: NGramIndex | None,
    executor: Executor,
    work: str,
    partitions: int,
) -> tuple[list[EntryState], list[str], list[ScanResult], dict[str, tuple[tuple[str, str], ...]]]:
    """Every entry's available documents (see the module docstring); (states, docs files, scan results, columns)."""
    columns, by_origin, results, files = scan(spec, docs, tokenizer, index, executor, work, partitions)
    states = partition_entries(spec, output, columns, by_origin, results, files, executor, work, partitions)
    return states, files, results, columns


def partition_entries(
    spec: MixtureSpec,
    output: str,
    columns: dict[str, tuple[tuple[str, str], ...]],
    by_origin: dict[str, list[int]],
    results: list[ScanResult],
    files: list[str],
    executor: Executor,
    work: str,
    partitions: int,
) -> list[EntryState]:
    """After the scan: duplicate ids, the top_fraction cuts and contamination as tasks over the candidate
    partitions in ``work``; one state per entry from their totals."""
    parts = range(partitions)
    counts = executor.map(
        dedup_partition, [PartitionTask(work, p) for p in parts], desc=f"mixture {spec.stage}: duplicate ids"
    )
    holders = {k: [p for p in parts if counts[p].get(k)] for k in range(len(spec.sources))}
    found = {k: sum(c.get(k, 0) for c in counts) for k in range(len(spec.sources))}
    wants = {
        k: math.ceil(found[k] * s.top_fraction)
        for k, s in enumerate(spec.sources)
        if s.top_fraction is not None and math.ceil(found[k] * s.top_fraction) < found[k]
    }
    cuts = find_cuts(executor, work, wants, holders, spec.stage)
    requests: dict[int, list[tuple[int, int, Any]]] = {p: [] for p in parts}
    for k, (key, less, tied) in cuts.items():
        need = wants[k] - less
        chosen = _tied(executor, work, k, key, need, holders[k], files) if need < tied else None
        for p in holders[k]:
            requests[p].append((k, key, None if chosen is None else chosen.get(p, [])))
    totals = executor.map(
        cut_partition,
        [PartitionTask(work, p, tuple(requests[p])) for p in parts],
        desc=f"mixture {spec.stage}: candidates",
    )
    return join_entries(spec, output, columns, by_origin, results, totals)


def join_entries(
    spec: MixtureSpec,
    output: str,
    columns: dict[str, tuple[tuple[str, str], ...]],
    by_origin: dict[str, list[int]],
    results: list[ScanResult],
    totals: list[PartitionTotals],
) -> list[EntryState]:
    """One state per mixture entry from the partitions' totals (and the scans' benchmark matches)."""
    matches = {r.file_no: r.matches for r in results if r.matches}
    states = []
    for i, s in enumerate(spec.sources):
        if s.origin not in by_origin:
            states.append(
                EntryState(s, status="missing", note=f"no {s.origin}/docs/*.parquet under {output}")
            )
            continue
        names = [n for n, _ in columns[s.origin]] + ["n_tokens"]
        st = EntryState(s, has_topic=TOPIC_COLUMN in names)
        st.candidates = sum(t.candidates.get(i, 0) for t in totals)
        st.decontam_rows = sorted(
            (
                {"mix_source": s.name, "origin": s.origin, **matches[f][row]}
                for t in totals
                for f, row in t.contaminated.get(i, ())
            ),
            key=lambda r: r["id"],
        )
        st.contaminated = len(st.decontam_rows)
        for p, t in enumerate(totals):
            for g, (n, tok) in t.groups.get(i, {}).items():
                if g not in st.groups:
                    st.groups[g] = (np.zeros(len(totals), np.int64), np.zeros(len(totals), np.int64))
                st.groups[g][0][p], st.groups[g][1][p] = n, tok
        if s.top_fraction is not None:
            st.ranked_by = _rank_column(s, names)
        if not st.size:
            st.status = "missing"
            st.note = (
                "the predicate selects no documents" if not st.candidates else "all candidates contaminated"
            )
        states.append(st)
    return states
