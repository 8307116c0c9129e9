"""``Step.skip_domains``: rows of a skipped domain bypass a step and come back in their places, kept, unscored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from filters.heuristics import GopherQuality
from pipelines.core.process import StepStats, run_steps
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from pipelines.core.steps import Step, StepResult, build_step, set_column, texts

CODE = "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n"
PROSE = (
    "The harbour committee met on Tuesday and the members asked for a second survey of the seabed before the "
    "new pier is built. The chair said that the town would publish the results of the survey in the spring, "
    "and that the work would not start before the fishing season had ended. Residents who live near the old "
    "quay will be invited to a meeting at the library, where the engineers will show the plans and answer "
    "questions about the traffic and the noise during the works."
)
SHORT = "Click here to win a prize now"


def _batch(rows: list[tuple[str, str | None]]) -> pa.Table:
    table = table_from_rows(
        [{"id": f"d{i}", "source": "t", "text": t} for i, (t, _) in enumerate(rows)], CORE_SCHEMA
    )
    return set_column(table, "domain", [d for _, d in rows], pa.string())


@dataclass
class TextLength(Step):
    """A score step that records how many characters it saw (to tell which rows went through it)."""

    kind: ClassVar[str] = "score"

    def adds(self) -> dict[str, pa.DataType]:
        return {"n_chars": pa.int64()}

    def process(self, batch: pa.Table) -> StepResult:
        return StepResult(set_column(batch, "n_chars", [len(t) for t in texts(batch)], pa.int64()))


def test_skipped_rows_bypass_a_filter_and_keep_their_order() -> None:
    batch = _batch([(PROSE, "prose"), (CODE, "code"), (SHORT, "prose"), (SHORT, "math"), (CODE, None)])
    gopher = build_step(GopherQuality, {"skip_domains": ["code", "math"]}, "steps.gopher")
    kept, rejected = run_steps([gopher], batch, [StepStats("gopher", "filter")])
    # gopher judged the prose rows (the short one goes) and the row without a domain (the code goes too)
    assert kept.column("id").to_pylist() == ["d0", "d1", "d3"]
    assert sorted(rejected[0].column("id").to_pylist()) == ["d2", "d4"]
    assert all(r.startswith("gopher:") for r in rejected[0].column("reason").to_pylist())
    # without the setting, the code and math rows are judged as prose and dropped
    kept, _ = run_steps([build_step(GopherQuality, {}, "g")], batch, [StepStats("gopher", "filter")])
    assert kept.column("id").to_pylist() == ["d0"]


def test_skipped_rows_get_null_scores_and_the_others_theirs() -> None:
    batch = _batch([(CODE, "code"), (PROSE, "prose"), (SHORT, "prose"), (CODE, "code")])
    kept, rejected = run_steps([TextLength(skip_domains=["code"])], batch, [StepStats("len", "score")])
    assert not rejected
    assert kept.column("id").to_pylist() == ["d0", "d1", "d2", "d3"]
    assert kept.column("n_chars").to_pylist() == [None, len(PROSE), len(SHORT), None]
    assert kept.column("text").to_pylist() == [CODE, PROSE, SHORT, CODE]


def test_a_batch_of_only_skipped_rows_still_gets_the_columns() -> None:
    batch = _batch([(CODE, "code"), (CODE, "code")])
    kept, _ = run_steps([TextLength(skip_domains=["code"])], batch, [StepStats("len", "score")])
    assert kept.column("n_chars").to_pylist() == [None, None]
    assert kept.schema.field("n_chars").type == pa.int64()


def test_without_a_domain_column_the_setting_is_inert() -> None:
    table = table_from_rows([{"id": "a", "source": "t", "text": SHORT}], CORE_SCHEMA)
    kept, rejected = run_steps(
        [build_step(GopherQuality, {"skip_domains": ["code"]}, "g")], table, [StepStats("g", "filter")]
    )
    assert kept.num_rows == 0 and rejected[0].column("reason").to_pylist()[0].startswith("gopher:")
