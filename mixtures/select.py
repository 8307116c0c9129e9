"""Entry selection of a mixture build: which documents each entry may sample, as fixed-width arrays in rank order.

One scan task per docs file (:func:`mixtures.tasks.scan_file`) counts tokens, checks benchmarks and applies every
entry's predicate to its file; the driver then joins the per-file arrays per entry: duplicate ids across files keep
the first file's copy, ``top_fraction`` keeps the best slice (ties by id, read only for the tied documents), and
contaminated documents leave.  The driver holds integers per candidate, never an id string per candidate: about
66 bytes per candidate at its peak (scan results, join, sampling and shuffle plan; ``bench_mixtures.py --driver``),
so it still grows with the candidates.

:func:`select_entries` is the hook for per-entry rules (topic shares, caps): it returns one :class:`EntryState`
per mixture entry, whose arrays later rules may narrow.
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
from mixtures.spec import MixtureError, MixtureSpec, SourceSpec
from mixtures.tasks import EntryQuery, ScanJob, ScanResult, column_list, entry_sql, scan_file
from mixtures.topics import TOPIC_COLUMN, TopicPlan
from pipelines.core.executor import Executor, TaskFailed

log = logging.getLogger(__name__)


@dataclass
class EntryState:
    """One mixture entry's available documents, in sampling (rank) order."""

    spec: SourceSpec
    status: str = "ok"
    note: str = ""
    candidates: int = 0
    contaminated: int = 0
    file_no: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rank_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    ranked_by: str | None = None
    decontam_rows: list[dict[str, Any]] = field(default_factory=list)
    topic: np.ndarray | None = None  # int16 topic codes, when the source has a topic column
    topic_plan: TopicPlan | None = None  # the entry's per-topic targets (mixtures/topics.py)

    @property
    def size(self) -> int:
        return len(self.n_tokens)

    @property
    def available(self) -> int:
        return int(self.n_tokens.sum())

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
) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[int, list[str]], list[ScanResult], list[str]]:
    """Check every entry's predicate, then run one scan task per docs file.

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
        for path in docs[origin]:
            entries = tuple(queries[i] for i in by_origin[origin])
            jobs.append(ScanJob(path, len(files), columns[origin], entries, spec.seed))
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
    return columns, {o: by_origin[o] for o in by_origin}, results, files


def entry_state(s: SourceSpec, k: int, results: list[ScanResult], files: list[str]) -> EntryState:
    """Join the entry's per-file candidates (``k``: its place among its source's entries) into one state.

    Each per-file array is released as soon as it is joined, and sort temporaries as soon as they are used, so the
    driver's peak stays near one copy of the entry's arrays."""
    parts = [(r.file_no, r.entries[k]) for r in results if k < len(r.entries) and len(r.entries[k].row)]
    st = EntryState(s)
    if not parts:
        return st

    def take(name: str) -> np.ndarray:
        joined = np.concatenate([getattr(c, name) for _, c in parts])
        for _, c in parts:
            setattr(c, name, np.empty(0, joined.dtype))  # not a view: that would keep the array alive
        return joined

    file_no = np.concatenate([np.full(len(c.row), f, np.int32) for f, c in parts])
    has_topic = parts[0][1].topic is not None
    rank_hash, id_hash = take("rank_hash"), take("id_hash")
    # rank order, and within one id the first file: the first of each (rank, id) hash pair is that id's copy
    order = np.lexsort((file_no, id_hash, rank_hash))
    first = np.ones(len(order), dtype=bool)
    sorted_hash = rank_hash[order]
    first[1:] = sorted_hash[1:] != sorted_hash[:-1]
    sorted_hash = id_hash[order]
    del id_hash
    first[1:] |= sorted_hash[1:] != sorted_hash[:-1]
    del sorted_hash
    keep = order[first]
    del order, first
    rows_all = take("row")
    if s.top_fraction is not None:
        keep = _top_slice(keep, take("rank"), file_no, rows_all, files, s.top_fraction)
    st.candidates = len(keep)
    bad = take("contaminated")[keep]
    matches = {(f, row): m for f, c in parts for row, m in c.matches.items()}
    st.decontam_rows = sorted(
        (
            {"mix_source": s.name, "origin": s.origin, **matches[(int(file_no[i]), int(rows_all[i]))]}
            for i in keep[bad]
        ),
        key=lambda r: r["id"],
    )
    st.contaminated = len(st.decontam_rows)
    keep = keep[~bad]
    st.file_no, st.row, st.rank_hash = file_no[keep], rows_all[keep], rank_hash[keep]
    del file_no, rows_all, rank_hash
    st.n_tokens = take("n_tokens")[keep]
    if has_topic:
        st.topic = take("topic")[keep]
    return st


def _top_slice(
    keep: np.ndarray,
    rank: np.ndarray,
    file_no: np.ndarray,
    row: np.ndarray,
    files: list[str],
    fraction: float,
) -> np.ndarray:
    """The best ``ceil(n * fraction)`` of ``keep`` by rank value (desc, NULLs last), ties by id; in rank order."""
    n = len(keep)
    want = math.ceil(n * fraction)
    if want >= n:
        return keep
    value = np.where(np.isnan(rank[keep]), np.inf, -rank[keep])  # ascending = best first, NULLs last
    cut = np.sort(value, kind="stable")[want - 1]
    take = value < cut
    tied = np.flatnonzero(value == cut)
    need = want - int(take.sum())
    if need < len(tied):  # the cut splits documents of equal value: the smaller ids go in
        ids = _read_ids(keep[tied], file_no, row, files)
        tied = tied[sorted(range(len(tied)), key=ids.__getitem__)[:need]]
    take[tied] = True
    return keep[take]


def _read_ids(members: np.ndarray, file_no: np.ndarray, row: np.ndarray, files: list[str]) -> list[str]:
    """The ids of a few candidates (a tie at a top_fraction cut), read from their docs files."""
    out: list[str] = [""] * len(members)
    for f in np.unique(file_no[members]).tolist():
        at = np.flatnonzero(file_no[members] == f)
        ids = store.read_table(files[f], columns=["id"]).column("id").take(pa.array(row[members[at]]))
        for k, v in zip(at.tolist(), ids.to_pylist(), strict=True):
            out[k] = v
    return out


def select_entries(
    spec: MixtureSpec,
    docs: dict[str, list[str]],
    output: str,
    tokenizer: str,
    index: NGramIndex | None,
    executor: Executor,
) -> tuple[list[EntryState], list[str], list[ScanResult], dict[str, tuple[tuple[str, str], ...]]]:
    """Every entry's available documents (see the module docstring); (states, docs files, scan results, columns)."""
    columns, by_origin, results, files = scan(spec, docs, tokenizer, index, executor)
    states = join_entries(spec, docs, output, columns, by_origin, results, files)
    return states, files, results, columns


def join_entries(
    spec: MixtureSpec,
    docs: dict[str, list[str]],
    output: str,
    columns: dict[str, tuple[tuple[str, str], ...]],
    by_origin: dict[str, list[int]],
    results: list[ScanResult],
    files: list[str],
) -> list[EntryState]:
    """One state per mixture entry from the scan results (whose per-file arrays are released as they are joined)."""
    origin_of = {path: o for o, paths in docs.items() for path in paths}
    per_origin: dict[str, list[ScanResult]] = {}
    for r in results:
        per_origin.setdefault(origin_of[files[r.file_no]], []).append(r)
    states = []
    for i, s in enumerate(spec.sources):
        if s.origin not in by_origin:
            states.append(
                EntryState(s, status="missing", note=f"no {s.origin}/docs/*.parquet under {output}")
            )
            continue
        st = entry_state(s, by_origin[s.origin].index(i), per_origin[s.origin], files)
        if s.top_fraction is not None:
            st.ranked_by = _rank_column(s, [n for n, _ in columns[s.origin]] + ["n_tokens"])
        if not st.size:
            st.status = "missing"
            st.note = (
                "the predicate selects no documents" if not st.candidates else "all candidates contaminated"
            )
        states.append(st)
    return states
