"""The step contract: RowFilter writes only ``reason(row)``; ``run_steps`` enforces each step's kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from filters.heuristics import C4Quality, GopherQuality
from filters.langid import LanguageFilter
from filters.thresholds import ScoreFilter
from pipelines.core.process import StepStats, run_steps
from pipelines.core.schema import CORE_SCHEMA, extend_schema, table_from_rows
from pipelines.core.steps import RowFilter, Step, StepKindError, StepResult, set_column, texts

PAGES = [
    "The committee met on Tuesday to review the harbour plan. Members asked for a second survey of the seabed.",
    "Buy now!!! Cheap watches cheap watches cheap watches",
    "Le conseil municipal a voté le budget de la piscine après trois heures de débat.",
]


def batch(extra: dict[str, list[Any]] | None = None) -> pa.Table:
    rows = [{"id": f"p{i}", "source": "t", "text": t} for i, t in enumerate(PAGES)]
    table = table_from_rows(rows, CORE_SCHEMA)
    for name, values in (extra or {}).items():
        table = set_column(table, name, values)
    return table


@dataclass
class ShoutingFilter(RowFilter):
    """Rejects texts with runs of exclamation marks (a user's filter: one method)."""

    max_marks: int = 2

    def reason(self, row: dict[str, Any]) -> str | None:
        return "shouting:exclamations" if "!" * (self.max_marks + 1) in row["text"] else None


def test_row_filter_needs_only_a_reason_method():
    step = ShoutingFilter()
    assert step.name == "shoutingfilter" and step.kind == "filter"
    kept, rejected = run_steps([step], batch(), [StepStats(step.name, step.kind)])
    assert kept.column("id").to_pylist() == ["p0", "p2"]
    assert rejected[0].column("reason").to_pylist() == ["shouting:exclamations"]
    assert rejected[0].column("rejected_by").to_pylist() == ["shoutingfilter"]


def test_converted_filters_keep_their_reasons():
    t = batch({"lang": ["en", "en", "fr"], "lang_score": [0.95, 0.3, 0.99], "q": [0.9, None, 0.1]})
    assert LanguageFilter(languages=["en"], threshold=0.5)(t).reasons == [
        None,
        "lang:low_score",
        "lang:not_en",
    ]
    f = ScoreFilter(name="q_filter", column="q", min=0.5)
    assert f(t).reasons == [None, "q_filter:null", "q_filter:below_min"]


@dataclass
class RejectingScore(Step):
    kind: ClassVar[str] = "score"

    def process(self, batch: pa.Table) -> StepResult:
        return StepResult(batch, ["oops" if len(t) < 60 else None for t in texts(batch)])


@dataclass
class ColumnAddingFilter(Step):
    kind: ClassVar[str] = "filter"

    def process(self, batch: pa.Table) -> StepResult:
        return StepResult(set_column(batch, "n", [len(t) for t in texts(batch)], pa.int32()))


@dataclass
class TextChangingFilter(Step):
    kind: ClassVar[str] = "filter"

    def process(self, batch: pa.Table) -> StepResult:
        return StepResult(set_column(batch, "text", [t.lower() for t in texts(batch)], pa.large_string()))


@dataclass
class Lowercase(Step):
    kind: ClassVar[str] = "transform"

    def process(self, batch: pa.Table) -> StepResult:
        new = set_column(batch, "text", [t.lower() for t in texts(batch)], pa.large_string())
        return StepResult(set_column(new, "n", [1] * batch.num_rows, pa.int32()), [None] * batch.num_rows, 3)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (RejectingScore(), "is a score step but rejected rows"),
        (ColumnAddingFilter(), "is a filter step but added column(s) ['n']"),
        (TextChangingFilter(), "is a filter step but changed the text"),
    ],
)
def test_run_steps_refuses_a_step_that_breaks_its_kind(step, message):
    with pytest.raises(
        StepKindError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        run_steps([step], batch(), [StepStats(step.name, step.kind)])


def test_a_transform_may_rewrite_add_and_reject_and_a_filter_returning_equal_text_passes():
    kept, _ = run_steps([Lowercase()], batch(), [StepStats("lowercase", "transform")])
    assert kept.column("text").to_pylist()[2].startswith("le conseil")
    same = batch()
    copy = pa.Table.from_pylist(
        same.to_pylist(), schema=same.schema
    )  # equal text in other buffers: not a change

    @dataclass
    class CopyingFilter(Step):
        kind: ClassVar[str] = "filter"

        def process(self, b: pa.Table) -> StepResult:
            return StepResult(copy, [None] * b.num_rows)

    kept, _ = run_steps([CopyingFilter()], same, [StepStats("c", "filter")])
    assert kept.num_rows == 3


def test_kind_follows_the_settings_of_datatrove_rules():
    assert GopherQuality().kind == "filter"
    assert GopherQuality(mode="tag").kind == "score"  # keeps every row, adds <name>_reason
    assert C4Quality(rewrite_text=True).kind == "transform"  # deletes the lines C4 rejects
    schema = extend_schema(CORE_SCHEMA, {})
    tagged = GopherQuality(name="gopher", mode="tag")
    kept, rejected = run_steps(
        [tagged], table_from_rows(batch().to_pylist(), schema), [StepStats("gopher", "score")]
    )
    assert kept.num_rows == 3 and not rejected and "gopher_reason" in kept.column_names
