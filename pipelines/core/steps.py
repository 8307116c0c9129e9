"""The step contract.

A step is a dataclass (its fields are its configuration) that maps an Arrow batch to a :class:`StepResult`:

* ``transform`` steps rewrite columns (HTML extraction, LaTeX cleanup, line dedup);
* ``score`` steps add the columns they declare in :meth:`Step.adds` (``lang``, ``perplexity``...);
* ``filter`` steps only read columns and say, per row, why it goes (``"gopher_rep:dup_line_frac"``) or ``None``;
  a row-wise filter subclasses :class:`RowFilter` and writes only ``reason(row)``.

``run_steps`` enforces the kinds (:func:`check_kind`): a ``score`` step may add columns but neither reject rows nor
change the text, a ``filter`` may reject rows but neither add columns nor change the text, a ``transform`` may do all
three (a transform that cannot process a row, e.g. an extraction time-out, rejects it with a reason).  The runner
moves rejected rows to ``rejected/`` with the reason, so nothing is lost.  A step's name is its key in the recipe
(``steps: {gopher_rep: ...}``); built in code without one, it is the class name in lower case.  Heavy state (models) is built by :meth:`Step.setup` once per
worker process, lazily, and is never pickled: attributes whose name starts with ``_`` are dropped on pickling.
Steps know nothing about Ray; the runner decides where they run (``resources`` says what a step would like).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pyarrow as pa

StepKind = Literal["transform", "score", "filter"]
#: the column a routing step (classifiers.domains.DomainScore) writes and ``Step.skip_domains`` reads
DOMAIN_COLUMN = "domain"


@dataclass
class StepResult:
    """What a step returns for one batch.

    ``table``: the batch, same rows in the same order (rewritten or with columns added);
    ``reasons``: one entry per row, ``None`` to keep it, else why it is rejected (``None`` list: keep all);
    ``changed``: how many rows a transform modified (for the stats).
    """

    table: pa.Table
    reasons: Sequence[str | None] | None = None
    changed: int = 0


@dataclass
class Step:
    """Base class of every step; subclasses are dataclasses whose fields are their settings."""

    kind: ClassVar[StepKind] = "transform"
    #: columns the step reads (checked by the recipe before anything runs)
    reads: ClassVar[tuple[str, ...]] = ("text",)
    #: Ray resources a step would like when run as an actor (e.g. {"num_gpus": 1}); empty: run inside the task
    resources: ClassVar[dict[str, float]] = {}

    name: str = field(default="", kw_only=True)
    #: rows whose ``domain`` column (:data:`DOMAIN_COLUMN`) is one of these are not passed to the step: they keep
    #: their text, are never rejected by it and get null in the columns it adds (e.g. code pages skip the prose
    #: heuristics); the runner passes the other rows and merges the results back in order (``run_steps``)
    skip_domains: list[str] = field(default_factory=list, kw_only=True)

    def __post_init__(self) -> None:
        if not self.name:  # a recipe names each step by its key; this is for steps built in code
            self.name = type(self).__name__.lower()

    def adds(self) -> dict[str, pa.DataType]:
        """Columns this step adds, with their types (a method so that settings can change them)."""
        return {}

    def check(self) -> None:
        """Cheap environment check before any input is read (``winnow run``, ``--dry-run``): raise an error that
        says how to fix it (a model file missing, and the command that installs it).  Loads nothing."""

    def setup(self) -> None:
        """Build heavy state (load a model).  Called once per process before the first batch."""

    def start_input(self, path: str) -> None:
        """Called before the first batch of each input: forget per-input state (e.g. a dedup cache), so that an
        input's output never depends on which inputs the same worker processed before it."""

    def process(self, batch: pa.Table) -> StepResult:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- machinery ---------------------------------------------------------------------------------------------
    def __call__(self, batch: pa.Table) -> StepResult:
        if not getattr(self, "_ready", False):
            self.setup()
            self._ready = True
        return self.process(batch)

    def config(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class StepKindError(RuntimeError):
    """A step did what its ``kind`` forbids (a bug in the step, not in the data: the run stops)."""


def check_kind(step: Step, before: pa.Table, result: StepResult) -> None:
    """Raise :class:`StepKindError` when ``result`` breaks the contract of ``step.kind`` (see the module doc)."""
    if step.kind == "transform":
        return
    rejects = result.reasons is not None and any(r is not None for r in result.reasons)
    added = [c for c in result.table.column_names if c not in before.column_names]
    problem = None
    if step.kind == "score" and rejects:
        problem = "rejected rows"
    elif step.kind == "filter" and added:
        problem = f"added column(s) {added}"
    elif result.table is not before and "text" in before.column_names and _text_changed(before, result.table):
        problem = "changed the text"
    if problem:
        raise StepKindError(
            f"step {step.name!r} ({type(step).__name__}) is a {step.kind} step but {problem}: a score step only "
            "adds columns, a filter only rejects rows; declare kind = 'transform' for a step that does both or "
            "rewrites text"
        )


def _text_changed(before: pa.Table, after: pa.Table) -> bool:
    old, new = before.column("text"), after.column("text")
    same_buffers = [b.address if b else 0 for c in old.chunks for b in c.buffers()] == [
        b.address if b else 0 for c in new.chunks for b in c.buffers()
    ]
    return not same_buffers and not old.equals(new)


@dataclass
class RowFilter(Step):
    """A filter written as one method: ``reason(row)`` returns why the row goes, or ``None`` to keep it.

    ``row`` maps each column named in :attr:`reads` to its value.  For filters whose rule is per row (thresholds,
    allow-lists); a vectorised rule writes :meth:`process` itself.
    """

    kind: ClassVar[StepKind] = "filter"

    def reason(self, row: dict[str, Any]) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, batch: pa.Table) -> StepResult:
        names = list(self.reads)
        columns = [batch.column(c).to_pylist() for c in names]
        return StepResult(
            batch,
            [self.reason(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)],
        )


def texts(batch: pa.Table, column: str = "text") -> list[str]:
    """The text column as Python strings (nulls become "")."""
    return ["" if t is None else t for t in batch.column(column).to_pylist()]


def set_column(batch: pa.Table, name: str, values: Any, dtype: pa.DataType | None = None) -> pa.Table:
    """Replace or append column ``name``."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type=dtype)
    if dtype is not None and arr.type != dtype:
        arr = arr.cast(dtype)
    idx = batch.schema.get_field_index(name)
    if idx >= 0:
        return batch.set_column(idx, pa.field(name, arr.type), arr)
    return batch.append_column(pa.field(name, arr.type), arr)


def routed_rows(step: Step, batch: pa.Table) -> tuple[list[int], list[int]] | None:
    """(row positions the step runs on, positions it skips) when ``step.skip_domains`` names a domain of this
    batch; ``None`` when every row goes through the step."""
    if not step.skip_domains or DOMAIN_COLUMN not in batch.column_names:
        return None
    skip = set(step.skip_domains)
    domains = batch.column(DOMAIN_COLUMN).to_pylist()
    run = [i for i, d in enumerate(domains) if d not in skip]
    if len(run) == len(domains):
        return None
    return run, [i for i, d in enumerate(domains) if d in skip]


def build_step(cls: type[Step], settings: dict[str, Any] | None, where: str) -> Step:
    """Instantiate ``cls`` from a config mapping, with an error that names the config section on a typo."""
    settings = dict(settings or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    return cls(**settings)
