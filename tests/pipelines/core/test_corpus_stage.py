"""The corpus-stage contract: ``run_stage`` skips a stage that is up to date, reruns it after docs change, resumes a
killed one on the listing it started with; the ``corpus_stages:`` config shape and the old top-level keys."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.core import corpus_stage
from pipelines.core.corpus_stage import CorpusStage, InputFile, fingerprint, run_stage
from pipelines.core.executor import Executor
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from pipelines.sources.registry import build_recipe, deep_merge, load_config

PAGES = [
    "The tide tables for the northern estuary are published every spring by the harbour office.",
    "Buy cheap watches now!!! Limited offer, click here.",
    "A short history of the lighthouse keepers who lived on the island until 1962.",
    "Buy cheap watches now!!! Free shipping on every order.",
]


def drop_task(args: tuple[InputFile, str, str]) -> int:
    """One docs file: rows whose text holds ``word`` leave it (a rewrite in place, as the dedup removal does)."""
    f, word, work = args
    docs = pq.read_table(f.path)
    keep = pc.invert(pc.match_substring(docs.column("text"), word))
    pq.write_table(docs.filter(keep), f.path)
    os.makedirs(work, exist_ok=True)
    return docs.num_rows - docs.filter(keep).num_rows


@dataclass
class DropWord(CorpusStage):
    """A toy stage: removes documents that contain a word; records the work folder each run used."""

    name: str = "drop_word"
    reason: str = "toy:word"
    word: str = "cheap"
    references: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    works: list[str] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        return {"word": self.word}

    def run(self, source_dir: str, files: list[InputFile], executor: Executor) -> dict[str, Any]:
        work = os.path.join(source_dir, "_dedup", f"{self.name}-{fingerprint(files, self.identity())}")
        self.works.append(work)
        removed = executor.map(drop_task, [(f, self.word, work) for f in files if not f.protected])
        return {"docs": len(files), "removed": sum(removed)}


def write_docs(root: str, name: str, texts: list[str]) -> None:
    os.makedirs(os.path.join(root, "docs"), exist_ok=True)
    rows = [{"id": f"{name}/{i}", "source": "toy", "text": t} for i, t in enumerate(texts)]
    pq.write_table(table_from_rows(rows, CORE_SCHEMA), os.path.join(root, "docs", f"{name}.parquet"))


def texts(root: str) -> list[str]:
    docs = os.path.join(root, "docs")
    return [
        t for n in sorted(os.listdir(docs)) for t in pq.read_table(os.path.join(docs, n))["text"].to_pylist()
    ]


def test_skips_when_up_to_date_and_reruns_after_docs_change(tmp_path):
    root = str(tmp_path / "src")
    write_docs(root, "a", PAGES[:2])
    write_docs(root, "b", PAGES[2:])
    stage = DropWord()
    assert run_stage(stage, root) == {"docs": 2, "removed": 2}
    assert texts(root) == [PAGES[0], PAGES[2]]
    again = run_stage(stage, root)
    assert again == {"docs": 2, "removed": 2, "up_to_date": True} and len(stage.works) == 1
    write_docs(root, "c", ["Cheap is not cheap: a word the toy stage removes, lower case only.", PAGES[0]])
    third = run_stage(stage, root)
    assert "up_to_date" not in third and third["removed"] == 1 and len(stage.works) == 2
    # other settings: not up to date either
    assert "up_to_date" not in run_stage(DropWord(word="lighthouse"), root)
    assert texts(root) == [PAGES[0], PAGES[0]]


def kill_before_the_state(root: str, monkeypatch: pytest.MonkeyPatch) -> DropWord:
    """Run the toy stage over ``root`` and kill it after its work, before ``run_stage`` writes its state."""
    real = corpus_stage.write_json_atomic

    def killed_at_state(path: str, obj: Any) -> None:
        if path.endswith("drop_word.json"):
            raise KeyboardInterrupt("killed before the state")
        real(path, obj)

    stage = DropWord()
    with monkeypatch.context() as m:
        m.setattr(corpus_stage, "write_json_atomic", killed_at_state)
        with pytest.raises(KeyboardInterrupt):
            run_stage(stage, root)
    return stage


def test_resumes_after_a_kill_between_the_work_and_the_state(tmp_path, monkeypatch):
    root = str(tmp_path / "src")
    write_docs(root, "a", PAGES[:2])
    write_docs(root, "b", PAGES[2:])
    stage = kill_before_the_state(root, monkeypatch)
    running = os.path.join(root, "_dedup", "drop_word.running.json")
    assert os.path.exists(running) and texts(root) == [PAGES[0], PAGES[2]]  # the docs were already rewritten
    resumed = run_stage(stage, root)
    # the same work folder although the docs files changed: named from the listing recorded before the run
    assert stage.works[0] == stage.works[1] and resumed == {"docs": 2, "removed": 0}
    assert not os.path.exists(running)
    assert run_stage(stage, root)["up_to_date"] is True and texts(root) == [PAGES[0], PAGES[2]]


def test_inputs_written_after_a_kill_get_a_second_round(tmp_path, monkeypatch):
    root = str(tmp_path / "src")
    write_docs(root, "a", PAGES[:2])
    stage = kill_before_the_state(root, monkeypatch)
    write_docs(root, "b", PAGES[2:])  # an input written after the kill
    stats = run_stage(stage, root)
    assert len(stage.works) == 3 and stats == {"docs": 2, "removed": 1}  # round 2 saw both files
    assert texts(root) == [PAGES[0], PAGES[2]]
    with open(os.path.join(root, "_dedup", "drop_word.json"), encoding="utf-8") as f:
        assert [os.path.basename(x["path"]) for x in json.load(f)["files"]] == ["a.parquet", "b.parquet"]
    assert run_stage(stage, root)["up_to_date"] is True


def test_empty_source_runs_nothing(tmp_path):
    os.makedirs(tmp_path / "docs")
    stage = DropWord()
    assert run_stage(stage, str(tmp_path)) == {"docs": 0} and stage.works == []


def test_a_stage_without_in_place_is_refused_on_object_storage_and_every_shipped_stage_has_it():
    """No local working copy any more: a stage whose run uses local file calls would write beside the bucket."""
    from pipelines.sources.registry import SOURCES

    stage = DropWord()
    with pytest.raises(ValueError, match="in_place"):
        run_stage(stage, "s3://winnow-nowhere/out/toy")  # refused before any request
    assert stage.works == []
    for src in SOURCES:  # imports every recipe's stage classes
        build_recipe(src, deep_merge(load_config(src), {}))

    def subclasses(c: type) -> set[type]:
        return {s for d in c.__subclasses__() for s in {d} | subclasses(d)}

    shipped = {  # the stages a config can name (dataclasses), not abstract bases such as RemovalStage
        c
        for c in subclasses(CorpusStage)
        if dataclasses.is_dataclass(c) and not c.__module__.startswith("tests.")
    }
    assert {c.__name__ for c in shipped} >= {"LineDedupStage", "MinHashDedupStage", "SemanticDedupStage"}
    assert all(c.in_place for c in shipped)


def _stages(recipe) -> list[tuple[str, str, dict[str, Any]]]:
    return [(type(s).__name__, s.name, s.identity()) for s in recipe.corpus_stages]


OLD_SHAPES = {
    "commoncrawl": {
        "unique_ids": {"enabled": True, "partitions": 4},
        "url_dedup": {"enabled": False},
        "minhash": {"threshold": 0.7, "bands": 9},
        "line_dedup": {"max_count": 3},
    },
    "books": {"book_dedup": {"threshold": 0.95}},
    "github": {"exact_dedup": {"score_column": "alnum_frac"}},
}


@pytest.mark.parametrize("source", sorted(OLD_SHAPES))
def test_an_old_shape_config_gives_the_same_stages_as_the_new_shape(source, caplog):
    old = OLD_SHAPES[source]
    renamed = {"exact_dedup": "exact_md5"}
    new = {"corpus_stages": {renamed.get(k, k): v for k, v in old.items()}}
    default = load_config(source)
    with caplog.at_level(logging.WARNING, logger="pipelines.sources.compose"):
        from_old = build_recipe(source, deep_merge(default, old))
    warned = [r.getMessage() for r in caplog.records]
    assert all(any(f"`{k}:` section is deprecated" in m for m in warned) for k in old)
    from_new = build_recipe(source, deep_merge(default, new))
    assert _stages(from_old) == _stages(from_new)
    assert _stages(from_new) != _stages(build_recipe(source, default))  # the settings did arrive


def test_the_stages_and_their_order_come_from_the_registry(caplog):
    recipe = build_recipe("commoncrawl", load_config("commoncrawl"))
    assert [s.name for s in recipe.corpus_stages] == ["unique_ids", "url_dedup", "minhash", "line_dedup"]
    assert not caplog.records  # the shipped configs use the new shape
    off = {"corpus_stages": {"minhash": {"enabled": False}}}
    assert "minhash" not in [
        s.name for s in build_recipe("commoncrawl", deep_merge(load_config("commoncrawl"), off)).corpus_stages
    ]
    with pytest.raises(ValueError, match=r"unknown corpus stage\(s\) \['minhahs'\]"):
        build_recipe("commoncrawl", {**load_config("commoncrawl"), "corpus_stages": {"minhahs": {}}})
    with pytest.raises(ValueError, match="corpus_stages.minhash"):
        build_recipe(
            "commoncrawl", {**load_config("commoncrawl"), "corpus_stages": {"minhash": {"bandz": 3}}}
        )
