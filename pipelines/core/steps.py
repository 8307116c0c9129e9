"""The step contract.

A step is a dataclass (its fields are its configuration) that maps an Arrow batch to a :class:`StepResult`:

* ``transform`` steps rewrite columns (HTML extraction, LaTeX cleanup, line dedup);
* ``score`` steps add the columns they declare in :meth:`Step.adds` (``lang``, ``perplexity``...);
* ``filter`` steps only read columns and say, per row, why it goes (``"gopher_rep:dup_line_frac"``) or ``None``.

Any step may reject rows it cannot process (an extraction time-out) by giving a reason; the runner moves those rows
to ``rejected/`` with the reason, so nothing is lost.  Heavy state (models) is built by :meth:`Step.setup` once per
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

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.default_name()

    @classmethod
    def default_name(cls) -> str:
        return cls.__name__.lower()

    def adds(self) -> dict[str, pa.DataType]:
        """Columns this step adds, with their types (a method so that settings can change them)."""
        return {}

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


def build_step(cls: type[Step], settings: dict[str, Any] | None, where: str) -> Step:
    """Instantiate ``cls`` from a config mapping, with an error that names the config section on a typo."""
    settings = dict(settings or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    return cls(**settings)
