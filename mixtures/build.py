"""Build one stage's mixture: curated docs -> predicate -> decontamination -> token-budget sampling -> shards.

A build writes ``shards/shard-<partition>-<n>.parquet`` (only training rows, so ``shards/*.parquet`` loads in HF
datasets or Polars; file names in order give the row order), ``decontamination/matches.parquet`` and
``manifest.json``.  OUTPUT may be a local path or an ``s3://`` / ``gs://`` URI (everything goes through
:class:`~pipelines.core.folder.Folder` and pyarrow's filesystems).  The commit rule, so that a reader never sees
half a stage and a killed build resumes:

* each build has a run name from what decides its output (:func:`run_name`: settings, tokenizer, listing
  fingerprints of docs and benchmarks), and writes everything under a folder of that name first;
* locally that folder is ``OUTPUT/mixtures/.<stage>.tmp-<run>/`` and the commit is its rename to
  ``OUTPUT/mixtures/<stage>/`` (the stage folder is swapped in whole);
* on an object store (no renames) it is ``OUTPUT/mixtures/<stage>/runs/<run>/`` and the commit is the one PUT of
  ``OUTPUT/mixtures/<stage>/manifest.json``, written last, whose ``shards`` name the run's files
  (``runs/<run>/shards/...``, relative to the stage folder).  Readers (:mod:`mixtures.views`) follow that manifest,
  never a listing; the runs it does not name are deleted after it is written;
* a rerun of the same inputs finds its run folder: shuffle pieces and partitions whose done marker exists are kept
  (every file there is written atomically), and token and decontamination sidecars are reused while current.  On
  an object store the markers stay with the committed run, so rerunning it rewrites no shard (locally the run folder
  became the stage folder and a rerun builds a new one).

The work runs as executor tasks (``executor:`` / ``workers:`` in the mixture or ``--executor``; local, a process
pool or Ray): one scan task per docs file (token counts and benchmark matches as sidecars, each entry's candidates
written into ``partitions`` candidate partitions; :mod:`mixtures.select`), tasks per candidate partition for
duplicate ids, the ``top_fraction`` cut and the sampling (:mod:`mixtures.partitions`, planned by
:mod:`mixtures.sampling` from per-partition totals), one shuffle task per docs file with sampled rows and one task
per shard partition (a range of the shuffle key) writing its shards (:mod:`mixtures.tasks`).  The driver holds a
plan, never an array per candidate.  The shard partition count comes from the selected tokens and
``shard_max_tokens`` only, and the candidate partitions decide no output, so the output is the same whatever the
executor, its worker count and ``partitions``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from typing import Any

import pyarrow as pa

from mixtures.benchmarks import load_index
from mixtures.decontam import DECONTAM_SCHEMA, NO_DECONTAMINATION, decontam_summary
from mixtures.sampling import sample_entries
from mixtures.select import EntryState, select_entries
from mixtures.spec import EmptyStage, MixtureError, MixtureSpec
from mixtures.store import MANIFEST, RUNS, commit_run, remove_tree, run_folder
from mixtures.tasks import PartitionJob, ShuffleJob, shuffle_file, write_partition
from mixtures.tokens import TokenCounter, get_counter
from mixtures.topics import TopicRuleError, plan_topics
from pipelines.core import storage
from pipelines.core.executor import Executor, get_executor
from pipelines.core.folder import Folder, listing_fingerprint
from pipelines.core.layout import readable_parquet

log = logging.getLogger(__name__)

SHARDS, DECONTAMINATION = "shards", "decontamination"  # sub-folders of a build
SHUFFLE = "_shuffle"  # the shuffle pieces and partition markers of a build, inside its run folder
SELECT = "_select"  # the candidate partitions and sampled rows of a build, inside its run folder
PIECES = (
    "pieces.json"  # in the shuffle folder: the shard partitions that have pieces (written after the shuffle)
)
PARTITION_BYTES = 256 << 20  # docs bytes per candidate partition when the mixture does not set ``partitions``


def candidate_partitions(spec: MixtureSpec, docs_bytes: int) -> int:
    """R: the mixture's ``partitions``, else one per 256 MiB of docs (4 to 1024): a file count set by settings
    (scan files are about docs files x R), and no effect on the output."""
    if spec.partitions:
        return spec.partitions
    return min(1024, max(4, math.ceil(docs_bytes / PARTITION_BYTES)))


def file_fingerprint(path: str) -> dict[str, Any]:
    """Bytes and sha256 of a small file the build depends on (the mixture YAML, a benchmark hash set)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def docs_listing(output: str, origins: list[str]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Per origin its readable docs files (sorted), and their fingerprints from the listing (size, mtime):
    the corpus is never read to fingerprint it.  ``output`` may be a local path or an ``s3://`` / ``gs://`` URI."""
    root = Folder(output)
    docs: dict[str, list[str]] = {}
    fingerprints: dict[str, Any] = {}
    for origin in origins:
        listed = root.child(origin, "docs").list(suffix=".parquet", recursive=False)
        # a truncated docs file (a crashed copy) is left out with a WARNING naming it; the pipeline's rerun redoes it
        good = set(readable_parquet([o.uri for o in listed]))
        docs[origin] = [o.uri for o in listed if o.uri in good]
        for o in listed:
            if o.uri in good:
                fingerprints[o.uri[len(root.location) :].lstrip("/")] = {
                    "bytes": o.size,
                    "mtime_ns": o.mtime_ns,
                }
    return {o: d for o, d in docs.items() if d}, fingerprints


def run_name(spec: MixtureSpec, tokenizer: str, inputs: dict[str, Any]) -> str:
    """16 hex digits naming a build from what decides its output (the mixture's settings, the tokenizer, the
    listing fingerprints of docs and benchmarks), not from where it runs: a rerun after a kill finds its own work
    folder and keeps what the killed build finished."""
    settings = {
        k: v for k, v in dataclasses.asdict(spec).items() if k not in ("executor", "workers", "partitions")
    }
    return listing_fingerprint([], extra={"settings": settings, "tokenizer": tokenizer, "inputs": inputs})


def _budget(spec: MixtureSpec, states: list[EntryState]) -> tuple[float, dict[str, float], float]:
    """(budget, effective share per present entry, largest budget the supply allows at those shares)."""
    present = [s for s in states if s.status == "ok" and s.spec.share > 0]
    missing = [s for s in states if s.status != "ok" and s.spec.share > 0]
    if missing and spec.missing_sources == "error":
        raise MixtureError(
            f"mixture {spec.stage}: no documents for "
            + ", ".join(f"{s.spec.name} ({s.note})" for s in missing)
            + "; run their pipelines or set missing_sources: "
            "renormalise"
        )
    if not present and any(s.candidates or s.note == "the predicate selects no documents" for s in states):
        absent = [s.spec.name for s in states if s.note.startswith("no ")]
        raise EmptyStage(
            f"mixture {spec.stage}: empty: no curated document satisfies its selection ("
            + "; ".join(f"{s.spec.name}: {s.note}" for s in states if not s.note.startswith("no "))
            + (f"; no curated output yet for {', '.join(absent)}" if absent else "")
            + ")"
        )
    if not present:
        raise MixtureError(
            f"mixture {spec.stage}: none of its sources has documents under OUTPUT ("
            + ", ".join(f"{s.spec.name}: {s.note}" for s in states)
            + ")"
        )
    total_share = sum(s.spec.share for s in present)
    eff = {s.spec.name: s.spec.share / total_share for s in present}
    max_budget = min(s.capacity / eff[s.spec.name] for s in present)
    budget = float(max_budget if spec.total_tokens is None else spec.total_tokens)
    if budget > max_budget * (1 + 1e-9):
        lines = [
            f"  {s.spec.name:<16} target {eff[s.spec.name] * budget:>16,.0f}  achievable "
            f"{s.available * s.spec.max_epochs:>16,.0f}  ({s.available:,} tokens x {s.spec.max_epochs} epochs)"
            for s in present
            if eff[s.spec.name] * budget > s.capacity
        ]
        msg = (
            f"mixture {spec.stage}: total_tokens {budget:,.0f} is impossible under the epoch caps; the largest "
            f"budget at the target shares is {max_budget:,.0f}. Short sources:\n" + "\n".join(lines)
        )
        if spec.on_shortfall == "error":
            raise MixtureError(
                msg + "\n  set on_shortfall: scale (or take_available), raise max_epochs, or lower "
                "total_tokens"
            )
        log.warning("%s\n  on_shortfall=%s", msg, spec.on_shortfall)
        if spec.on_shortfall == "scale":
            budget = max_budget
    return budget, eff, max_budget


def build_stage(
    spec: MixtureSpec,
    output: str,
    counter: TokenCounter | None = None,
    executor: str | Executor | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Build ``OUTPUT/mixtures/<stage>/`` and return its manifest (``executor``/``workers`` override the spec's)."""
    output = storage.absolute(output)
    counter = counter or get_counter(spec.tokenizer)
    ex = get_executor(executor or spec.executor, workers or spec.workers)
    origins = sorted({s.origin for s in spec.sources})
    docs, fingerprints = docs_listing(output, origins)
    index = load_index(spec.decontaminate) if spec.decontaminate and spec.decontaminate.benchmarks else None
    if index is None:
        log.warning(NO_DECONTAMINATION, spec.stage)
    bench_fp = {
        b.name: {
            "path": b.path,
            **file_fingerprint(b.path if b.fields else os.path.join(b.path, b.name + ".npy")),
        }
        for b in (spec.decontaminate.benchmarks if spec.decontaminate else ())
    }
    inputs = {
        "mixture": file_fingerprint(spec.path) if spec.path else None,
        "docs": fingerprints,
        "benchmarks": bench_fp,
    }
    run = run_name(spec, counter.fingerprint, inputs)
    stage_dir = Folder(storage.join(output, "mixtures", spec.stage))
    work = run_folder(output, spec.stage, run)
    selection = work.uri(SELECT)
    r = candidate_partitions(spec, sum(f["bytes"] for f in fingerprints.values()))
    states, files, scans, _ = select_entries(spec, docs, output, counter.name, index, ex, selection, r)
    for st in states:  # per-topic shares, caps and weights inside an entry (mixtures/topics.py)
        try:
            st.topic_plan = (
                plan_topics(st.spec.topics, st.topic_available(), st.spec.origin) if st.size else None
            )
        except TopicRuleError as exc:
            raise MixtureError(f"mixture {spec.stage}: source {st.spec.name!r}: {exc}") from None
    nodes = {"scan": sorted({r.node for r in scans})}
    try:
        budget, eff, max_budget = _budget(spec, states)
    except EmptyStage:  # what an earlier build wrote no longer matches the mixture: it goes
        remove_tree(work)
        stale = Folder(storage.join(output, "mixtures", spec.stage))
        if stale.exists():
            stale.remove(MANIFEST)  # first: no reader follows it to shards being deleted
            remove_tree(stale)
            log.warning(
                "mixture %s: removed the previous build (%s): the stage now selects nothing",
                spec.stage,
                stale.location,
            )
        raise

    per_source, touched = sample_entries(ex, selection, spec.stage, states, eff, budget)
    total = sum(p["realised_tokens"] for p in per_source)
    for p in per_source:
        p["realised_share"] = round(p["realised_tokens"] / total, 6) if total else 0.0
        if p["status"] == "ok" and abs(p["realised_tokens"] - p["target_tokens"]) > 0.01 * budget:
            # whole documents cannot meet the share: they are long next to the target (a book in a small budget)
            p["status"] = "off_target"
            p["note"] = (
                f"documents too coarse for {p['target_tokens']:,} target tokens "
                f"({p['available_documents']:,} documents, {p['available_tokens']:,} tokens); raise total_tokens"
            )
    decontam_rows = [r for st in states for r in st.decontam_rows]

    partitions = max(1, math.ceil(total / max(1, spec.shard_max_tokens)))
    names = tuple(st.spec.name for st in states)
    jobs = [ShuffleJob(files[f], f, selection, work.uri(SHUFFLE), names, partitions) for f in touched]
    shards = _write_shards(ex, spec.stage, spec.shard_max_tokens, jobs, work, nodes)
    remove_tree(work.child(SELECT))
    prefix = f"{RUNS}/{run}/" if stage_dir.remote else ""  # shard names relative to the stage folder
    for sh in shards:
        sh["file"] = f"{prefix}{SHARDS}/{sh['file']}"
    work.write_table(
        f"{DECONTAMINATION}/matches.parquet",
        pa.Table.from_pylist(decontam_rows, schema=DECONTAM_SCHEMA),
        compression="zstd",
    )
    manifest = {
        "stage": spec.stage,
        "mixture_file": spec.path,
        "seed": spec.seed,
        "tokenizer": counter.fingerprint,
        "total_tokens_requested": spec.total_tokens if spec.total_tokens is not None else "max",
        "total_tokens_budget": round(budget),
        "max_budget_at_target_shares": round(max_budget),
        "on_shortfall": spec.on_shortfall,
        "realised_tokens": total,
        "documents": sum(p["documents"] for p in per_source),
        "sources": per_source,
        "shard_partitions": partitions,
        "shards": shards,
        "decontamination": decontam_summary(spec.stage, index, decontam_rows),
        "inputs": inputs,
        # where the work ran (differs between runs of the same inputs; everything above does not)
        "execution": {"executor": ex.name, "nodes": nodes, "run": run},
    }
    commit_run(stage_dir, work, run, manifest)
    return manifest


def _write_shards(
    ex: Executor,
    stage: str,
    max_tokens: int,
    jobs: list[ShuffleJob],
    folder: Folder,
    nodes: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """Shuffle the sampled rows into shard partitions (key ranges; one task per docs file), then one task per
    partition sorts its rows and writes its shards; returns the shards in order."""
    if not jobs:
        return []
    work = Folder(folder.uri(SHUFFLE))
    shuffled: list[tuple[str, list[tuple[int, str]]]] = []
    if work.exists(PIECES):  # a rerun of a committed run: the partitions' markers name their shards
        wanted = work.read_json(PIECES)
    else:
        shuffled = ex.map(shuffle_file, jobs, desc=f"mixture {stage}: shuffle")
        wanted = sorted({p for _, made in shuffled for p, _ in made})
        work.write_json(PIECES, wanted)
    written = ex.map(
        write_partition,
        [PartitionJob(p, folder.uri(SHARDS), max_tokens, folder.uri(SHUFFLE)) for p in wanted],
        desc=f"mixture {stage}: shards",
    )
    if (
        folder.remote
    ):  # the pieces go; the partitions' done markers stay with the run (a rerun writes nothing)
        for name in work.folders():
            if name.startswith("p-"):
                remove_tree(work.child(name))
    else:  # the run folder becomes the stage folder
        remove_tree(work)
    nodes["shuffle"] = sorted({n for n, _ in shuffled})
    nodes["shards"] = sorted({n for n, _ in written})
    return [sh for _, shards in written for sh in shards]
