"""The corpus-stage contract: a pass over a whole written source (dedup), and the one function that runs any stage.

A stage (:class:`CorpusStage`) only does its work: ``run(source_dir, files, executor) -> stats`` over the docs
files it is given.  :func:`run_stage` does the rest, the same way for every stage: fingerprint the docs listing
(and any reference corpus) → skip when the stage already ran over exactly these files with these settings → record
the listing it is about to work on (``_dedup/<name>.running.json``) → run → write the state
(``_dedup/<name>.json``: fingerprint after the run, stats, the listing).  A stage killed at any point is resumed
from the recorded listing, so a work folder named from it stays the same although the stage was rewriting docs
files; inputs written after the kill are deduplicated by a second round right after.  On object storage
(``s3://``, ``gs://``) a stage reads and writes the bucket directly, its work folder in ``_dedup/`` there, so no
machine holds a copy of the source; a stage that does not say it can (``in_place``) is refused there.

:func:`run_stages` chains the stages of a recipe; a source config declares them in the shape of its steps
(``corpus_stages: {minhash: {...}, line_dedup: {enabled: false}}``) and :meth:`CorpusStage.from_config` builds one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from pipelines.core import storage
from pipelines.core.corpus_files import InputFile, build_inputs, fingerprint, list_parquet  # noqa: F401 - re-exported
from pipelines.core.executor import Executor, get_executor
from pipelines.core.folder import Folder
from pipelines.core.layout import write_json_atomic


class CorpusStage:
    """Base of every corpus stage.  Subclasses are dataclasses whose fields are their settings.

    ``name`` names its files (``_dedup/<name>.json``, ``duplicates/<name>.parquet``) and its key in
    ``corpus_stages:``; ``reason`` is the rejection reason of the rows it removes; ``references`` are corpora it
    matches against but never changes.  Stages know nothing about Ray: they get an executor.
    """

    name: str
    reason: str
    references: list[str]
    #: True when :meth:`run` reads and writes only through the storage object (``pipelines.core.folder``), so it
    #: runs in place on ``s3://`` / ``gs://`` (every Winnow stage does); :func:`run_stage` refuses a stage
    #: without it on object storage rather than letting local file calls write beside the bucket
    in_place: bool = False
    #: the settings of the engine behind the stage (e.g. ``MinHashConfig`` fields), checked by :meth:`validate`
    settings: dict[str, Any]

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any]) -> CorpusStage:
        """The stage from its ``corpus_stages.<name>`` section (without ``enabled``); bad keys fail here.

        Keys that are fields of the stage set them; the others go over its ``settings``.  A new stage (e.g. a
        semantic dedup) needs no parser of its own: register its class under a name in the source's
        ``CORPUS_STAGES``."""
        own = {f.name for f in dataclasses.fields(cls)} - {"settings"}  # type: ignore[arg-type]
        stage = cls(name=name, **{k: v for k, v in section.items() if k in own})  # type: ignore[call-arg]
        stage.settings = {**stage.settings, **{k: v for k, v in section.items() if k not in own}}
        stage.validate()
        return stage

    def validate(self) -> None:
        """Fail on settings the engine does not know (before any input is read)."""

    def identity(self) -> dict[str, Any]:
        """The settings its result depends on (part of the fingerprint; not how it is executed)."""
        return {}

    def executor(self) -> Executor:
        """Where its tasks run (from its settings)."""
        return get_executor("local")

    def run(self, source_dir: str, files: list[InputFile], executor: Executor) -> dict[str, Any]:
        """Do the work over ``files`` (docs, then protected references); idempotent per task, returns stats."""
        raise NotImplementedError


def _read(path: str) -> dict[str, Any]:
    if storage.is_uri(path):
        return storage.read_json(path) if storage.exists(path) else {}
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _listing(stage: CorpusStage, source_dir: str) -> list[InputFile]:
    docs = storage.join(source_dir, "docs")
    if not Folder(docs).list(suffix=".parquet"):
        return []
    return build_inputs([docs], stage.references)


def run_stage(stage: CorpusStage, source_dir: str, executor: Executor | None = None) -> dict[str, Any]:
    """fingerprint → skip if up to date → run → state, for any stage, resumable at every point (module doc)."""
    if storage.is_uri(source_dir) and not stage.in_place:
        raise ValueError(
            f"corpus stage {stage.name} ({type(stage).__name__}) cannot run on {source_dir}: its run does not "
            "read and write through pipelines.core.folder.Folder (in_place = False).  Port its file access to "
            "Folder and set in_place = True, or write the source to a local or shared path"
        )
    settings = {"stage": stage.name, **stage.identity()}
    state_path = storage.join(source_dir, "_dedup", f"{stage.name}.json")
    running_path = storage.join(source_dir, "_dedup", f"{stage.name}.running.json")
    listed = _listing(stage, source_dir)
    running = _read(running_path)
    if not running and not any(not f.protected for f in listed):
        return {"docs": 0}
    state = _read(state_path)
    if not running and state.get("fingerprint") == fingerprint(listed, settings):
        return {**state["stats"], "up_to_date": True}
    files = [InputFile(**f) for f in running["files"]] if running else listed
    recorded = [dataclasses.asdict(f) for f in files]
    if not running:
        write_json_atomic(running_path, {"files": recorded})
    stats = stage.run(source_dir, files, executor or stage.executor())
    after = _listing(stage, source_dir)
    same = [f.path for f in after] == [f.path for f in files]
    # inputs added since the listing was recorded were not part of this round: leave the state stale for them
    final = {"fingerprint": fingerprint(after, settings) if same else "", "stats": stats, "files": recorded}
    write_json_atomic(state_path, final)
    Folder(source_dir).remove(f"_dedup/{stage.name}.running.json")
    if running and not same:  # the interrupted round is finished; now a round with the inputs written since
        return run_stage(stage, source_dir, executor)
    return stats


def _docs_listing(base: str) -> list[list[Any]]:
    """What the docs folder holds now (names, sizes, mtimes), from one listing."""
    docs = storage.join(base, "docs")
    if storage.is_uri(base):
        return [[o.uri[len(docs) :], o.size, o.mtime_ns] for o in storage.list_files(docs)]
    names = sorted(os.listdir(docs)) if os.path.isdir(docs) else []
    return [[n, (st := os.stat(os.path.join(docs, n))).st_size, st.st_mtime_ns] for n in names]


def run_stages(stages: list[CorpusStage], base: str, inputs_written: bool) -> dict[str, Any]:
    """Run the corpus stages in order as one resumable chain; returns their stats by name.

    A later stage that rewrites docs (line dedup after MinHash) changes the docs fingerprint an earlier stage
    recorded, so on its own every rerun would redo the earlier one (and replace its clusters with those of the
    survivors).  ``_dedup/_chain.json`` records the stages done, the one running and the docs listing after the
    last: a run that wrote no input skips the stages done and resumes the one that was running; a run that wrote
    inputs, or docs that changed outside the chain, start it again (each stage still skips itself when current).
    """
    if not stages:
        return {}
    path = storage.join(base, "_dedup", "_chain.json")
    names = [s.name for s in stages]
    state = _read(path)
    fresh = inputs_written or state.get("stages") != names
    if fresh or (state.get("running") is None and state.get("listing") != _docs_listing(base)):
        state = {}
    done: dict[str, Any] = dict(state.get("done") or {})
    results: dict[str, Any] = {}
    for stage in stages:
        if stage.name in done:
            results[stage.name] = {**done[stage.name], "up_to_date": True}
            continue
        write_json_atomic(path, {"stages": names, "done": done, "running": stage.name, "listing": None})
        results[stage.name] = done[stage.name] = run_stage(stage, base)
    ran = state.get("running") is not None or len(state.get("done") or {}) < len(stages)
    if ran:  # a rerun that skipped every stage writes nothing
        final = {"stages": names, "done": done, "running": None, "listing": _docs_listing(base)}
        write_json_atomic(path, final)
    return results
