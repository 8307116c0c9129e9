"""The spine: schema, step contract, per-input processing, lock, config, query views."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.layout import input_key
from pipelines.core.locks import LockedError, run_lock
from pipelines.core.process import StepStats, process_input, run_steps
from pipelines.core.recipe import Reader, ReadError, Recipe, Skip
from pipelines.core.schema import CORE_SCHEMA, conform, table_from_rows
from pipelines.core.steps import Step, StepResult, build_step, set_column, texts
from pipelines.query import connect, views
from pipelines.sources.registry import deep_merge, load_config


@dataclass
class WordCount(Step):
    kind: ClassVar[str] = "score"

    def adds(self):
        return {"n_words": pa.int32()}

    def process(self, batch):
        return StepResult(set_column(batch, "n_words", [len(t.split()) for t in texts(batch)], pa.int32()))


@dataclass
class MinWords(Step):
    kind: ClassVar[str] = "filter"
    reads: ClassVar[tuple[str, ...]] = ("n_words",)
    minimum: int = 3

    def process(self, batch):
        return StepResult(
            batch,
            [None if n >= self.minimum else "words:too_few" for n in batch.column("n_words").to_pylist()],
        )


@dataclass
class Upper(Step):
    kind: ClassVar[str] = "transform"

    def setup(self):
        self._model = object()  # stands for heavy state that must never travel

    def process(self, batch):
        old = texts(batch)
        new = [t.upper() for t in old]
        return StepResult(
            set_column(batch, "text", new, pa.large_string()),
            None,
            sum(a != b for a, b in zip(old, new, strict=True)),
        )


@dataclass
class ListReader(Reader):
    """Reads a text file: one document per line; 'SKIP' lines are skipped, 'BAD' rejected, 'BOOM' raises."""

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                line = line.rstrip("\n")
                if line == "SKIP":
                    yield Skip("skip:marker")
                elif line == "BOOM":
                    raise ReadError(f"corrupt after line {i}")
                elif line == "BAD":
                    yield {"id": f"{path}:{i}", "text": line, "reason": "read:bad_line"}
                else:
                    yield {"id": f"{path}:{i}", "text": line, "meta": {"line": i}}


def make_recipe(**kw) -> Recipe:
    return Recipe("toy", ListReader(batch_size=2), [Upper(), WordCount(), MinWords(**kw)])


def test_table_from_rows_and_conform_fill_missing_columns():
    t = table_from_rows([{"id": "a", "source": "s", "text": "x", "meta": {"k": 1}}], CORE_SCHEMA)
    assert t.column("meta").to_pylist() == ['{"k": 1}']
    wider = pa.schema(list(CORE_SCHEMA) + [pa.field("lang", pa.string())])
    assert conform(t, wider).column("lang").to_pylist() == [None]


def test_run_steps_splits_rejections_and_counts():
    batch = table_from_rows(
        [{"id": str(i), "source": "s", "text": "a b c d"[: 2 * i + 1]} for i in range(4)], CORE_SCHEMA
    )
    steps = [Upper(), WordCount(), MinWords(minimum=3)]
    stats = [StepStats(s.name, s.kind) for s in steps]
    kept, rejected = run_steps(steps, batch, stats)
    assert kept.column("id").to_pylist() == ["2", "3"]
    assert kept.column("text").to_pylist() == ["A B C", "A B C D"]
    (rej,) = rejected
    assert rej.column("reason").to_pylist() == ["words:too_few", "words:too_few"]
    assert rej.column("rejected_by").to_pylist() == ["minwords", "minwords"]
    assert rej.column("n_words").to_pylist() == [1, 2]  # scores travel with the rejected rows
    assert (stats[0].changed, stats[2].seen, stats[2].kept, dict(stats[2].dropped)) == (
        4,
        4,
        2,
        {"words:too_few": 2},
    )


def test_step_pickles_without_heavy_state():
    step = Upper()
    step(table_from_rows([{"id": "1", "source": "s", "text": "a"}], CORE_SCHEMA))
    assert hasattr(step, "_model")
    clone = pickle.loads(pickle.dumps(step))
    assert not hasattr(clone, "_model") and clone.name == "upper"


def test_build_step_names_the_config_section_on_a_typo():
    with pytest.raises(ValueError, match=r"toy\.steps\.min.*minimun"):
        build_step(MinWords, {"minimun": 3}, "toy.steps.min")


def test_recipe_validate_finds_missing_columns():
    with pytest.raises(ValueError, match="reads.*n_words"):
        Recipe("toy", ListReader(), [MinWords()]).validate()


def test_process_input_accounts_for_every_row(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one\nSKIP\nthe quick brown fox\nBAD\nred green blue\nBOOM\nnever read\n")
    stats = process_input(make_recipe(), str(src), str(tmp_path / "out"))
    assert (stats["read"], stats["kept"], stats["rejected"]) == (4, 2, 2)
    assert stats["skipped"] == {"skip:marker": 1, "read_error:ReadError": 1}
    assert stats["rejected_by_reason"] == {"read:bad_line": 1, "words:too_few": 1}
    key = input_key(str(src))
    docs = pq.read_table(tmp_path / "out" / "toy" / "docs" / f"{key}.parquet")
    assert docs.column("text").to_pylist() == ["THE QUICK BROWN FOX", "RED GREEN BLUE"]
    assert docs.column("source").to_pylist() == ["toy", "toy"]
    rej = pq.read_table(tmp_path / "out" / "toy" / "rejected" / f"{key}.parquet")
    assert sorted(rej.column("rejected_by").to_pylist()) == ["minwords", "reader"]
    assert os.path.exists(tmp_path / "out" / "toy" / "_done" / f"{key}.json")
    # no temporary file is left behind
    assert not [n for n in os.listdir(tmp_path / "out" / "toy" / "docs") if ".tmp-" in n]


def test_lock_refuses_a_second_run_with_who_holds_it(tmp_path):
    with run_lock(str(tmp_path)):
        code = (
            f"import sys; sys.path.insert(0, {os.getcwd()!r})\nfrom pipelines.core.locks import run_lock, LockedError\n"
            f"try:\n    with run_lock({str(tmp_path)!r}): print('got it')\nexcept LockedError as e: print('LOCKED', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.startswith("LOCKED") and f"pid {os.getpid()}" in out and "--wait" in out
    with run_lock(str(tmp_path)):  # released: taken again at once
        pass


def test_lock_in_same_process_is_exclusive(tmp_path):
    with run_lock(str(tmp_path)), pytest.raises(LockedError), run_lock(str(tmp_path)):
        pass


def test_user_config_overrides_only_what_it_names(tmp_path):
    user = tmp_path / "cc.yaml"
    user.write_text("steps:\n  lang_filter:\n    threshold: 0.8\n")
    cfg = load_config("commoncrawl", str(user))
    assert cfg["steps"]["lang_filter"] == {"languages": ["en"], "threshold": 0.8, "thresholds": {}}
    assert cfg["steps"]["gopher"]["mode"] == "drop"
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_query_views_cover_docs_rejected_and_stats(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("the quick brown fox\nno\n")
    process_input(make_recipe(), str(src), str(tmp_path / "out"))
    con = connect(str(tmp_path / "out"))
    assert {"docs", "rejected", "stats", "step_stats", "toy_docs", "toy_rejected"} <= set(views(con))
    assert con.execute("SELECT count(*) FROM docs").fetchone() == (1,)
    assert con.execute("SELECT reason FROM rejected").fetchall() == [("words:too_few",)]
    assert con.execute("SELECT read, kept, rejected FROM stats").fetchall() == [(2, 1, 1)]
    assert con.execute("SELECT sum(seen) FROM step_stats WHERE step='upper'").fetchone() == (2,)


def test_batches_are_cut_by_text_size_as_well_as_rows(tmp_path, monkeypatch):
    """Large documents (books) never pile up batch_size at a time: a batch also ends at MAX_BATCH_CHARS."""
    import pipelines.core.process as process

    seen: list[int] = []

    @dataclass
    class BatchSizes(Step):
        def process(self, batch):
            seen.append(batch.num_rows)
            return StepResult(batch)

    monkeypatch.setattr(process, "MAX_BATCH_CHARS", 100)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(["x" * 60] * 5) + "\n" + "\n".join(["short"] * 3) + "\n")
    stats = process_input(
        Recipe("toy", ListReader(batch_size=4), [BatchSizes()]), str(src), str(tmp_path / "o")
    )
    assert seen == [2, 2, 4] and stats["kept"] == 8


def test_only_steps_without_per_input_state_become_actors(ray_local):
    """One actor serves batches of many inputs at once, so a step that resets state per input stays in the tasks."""
    from pipelines.readers.books import BooksReader
    from pipelines.runner import ActorStep, _actor_steps

    class StatelessModel(Step):  # defined here so that Ray's workers receive it by value
        resources = {"num_cpus": 1}

        def process(self, batch: pa.Table) -> StepResult:
            return StepResult(batch)

    class PerInputModel(StatelessModel):
        def start_input(self, path: str) -> None:
            self._seen = 0

    recipe = Recipe(
        source="t", reader=BooksReader(), steps=[PerInputModel(name="a"), StatelessModel(name="b")]
    )
    placed = _actor_steps(recipe)
    try:
        assert placed.steps[0] is recipe.steps[0]
        assert isinstance(placed.steps[1], ActorStep)
        assert placed.steps[1].placement == {"actors": 2, "num_cpus": 1}
        table = pa.table({"id": ["x"], "text": ["a document"]})
        assert placed.steps[1](table).table.equals(table)  # the batch went to an actor and came back
    finally:  # the actors hold the session's two CPUs
        for actor in getattr(placed.steps[1], "actors", []):
            ray_local.kill(actor)


def test_a_ray_run_reports_each_failed_input_and_completes_the_others(ray_local, tmp_path):
    """The runner's tasks go through the Ray executor: an input whose worker hits an environment error is named
    with its cause, has no marker, and the other inputs complete (their summary is written)."""
    import json

    from pipelines.runner import InputsFailed, run_recipe
    from pipelines.sources.registry import build_recipe

    @dataclass
    class DeniedOnOneBook(Step):  # defined here so that Ray's workers receive it by value
        victim: str = "pg90002.txt"

        def start_input(self, path: str) -> None:
            self._path = path

        def process(self, batch: pa.Table) -> StepResult:
            if os.path.basename(self._path) == self.victim:
                raise PermissionError(13, "Permission denied", self._path)
            return StepResult(batch)

    config = deep_merge(load_config("books"), {"corpus_stages": {"book_dedup": {"enabled": False}}})
    recipe = build_recipe("books", config)
    recipe.steps.insert(0, DeniedOnOneBook(name="denied"))
    inputs = os.path.join(os.path.dirname(__file__), "..", "fixtures", "books")
    out = tmp_path / "out"
    with pytest.raises(InputsFailed) as failed:
        run_recipe(recipe, inputs, str(out), executor="ray", progress=False)
    (victim,) = failed.value.failures
    assert os.path.basename(victim) == "pg90002.txt" and "Permission denied" in failed.value.failures[victim]
    assert not (out / "books" / "_done" / f"{input_key(victim)}.json").exists()
    summary = json.loads((out / "books" / "summary.json").read_text())
    assert list(summary["failed"]) == [victim] and summary["inputs"] == len(
        os.listdir(out / "books" / "_done")
    )
    assert summary["inputs"] >= 3
