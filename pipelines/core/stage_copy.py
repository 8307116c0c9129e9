"""Corpus stages over a source written to object storage, through a local working copy: only for the stages that
still need one (line dedup and semantic dedup; their passes use local paths).  The MinHash and exact dedup stages
(``in_place``) read and write the bucket directly and never come here.

``pipelines.core.corpus_stage.run_stage`` comes here for an ``s3://`` / ``gs://`` source and a stage without
``in_place``.  Such stages are local multi-pass workflows that rewrite
``docs/<key>.parquet``, ``rejected/<key>.parquet`` and ``stats/<key>.json`` in place.  On ``s3://`` / ``gs://`` they
run unchanged on a copy of the source in a local temporary folder (under ``WINNOW_WORK_DIR``, default the system
temp dir), and only the files whose bytes changed are uploaded back: rejected files first, then docs (the order the
local stages use, so a run killed in between leaves a row in both, which the next run repairs), then stats and the
clusters; the stage's state object ``_dedup/<stage>.json`` last.

Reruns are idempotent: the state holds a fingerprint of the stage's settings and the ``docs/`` objects (name, size,
modification time) as they were after the stage; when it still matches, the stage is skipped without downloading
anything.  A pass killed
half-way is not resumed from its intermediate files (they were local): the next run redoes the stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

from pipelines.core import storage
from pipelines.core.corpus_files import build_inputs, fingerprint

#: a ``pipelines.core.corpus_stage.CorpusStage`` (not imported: that module calls this one)
CorpusStage = Any

log = logging.getLogger(__name__)

#: folders and files of a source that the stages neither read nor write
_NOT_COPIED_DIRS = ("_done", "_dedup")
_NOT_COPIED_FILES = (".lock", "summary.json")
#: upload order: rejected rows land before they leave docs (see ``dedup.removal.move_to_rejected``)
_UPLOAD_ORDER = ("rejected", "docs", "stats")


def _references(stage: CorpusStage) -> list[str]:
    refs = list(stage.references)
    remote = [r for r in refs if storage.is_uri(r)]
    if remote:
        raise ValueError(
            f"corpus stage {stage.name}: reference corpora on object storage are not supported "
            f"({remote[0]}); copy them to a local or shared path"
        )
    return refs


def docs_fingerprint(base: str, stage: CorpusStage) -> str:
    """What the stage's result depends on: its name and settings, the ``docs/`` objects and any local reference
    corpus."""
    settings = {"stage": stage.name, **stage.identity()}
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    refs = _references(stage)
    if refs:
        h.update(fingerprint(build_inputs([], refs), {}).encode())
    for o in storage.list_files(storage.join(base, "docs")):
        h.update(f"{o.uri}|{o.size}|{o.mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _copied(rel: str) -> bool:
    first = rel.split("/", 1)[0]
    name = rel.rsplit("/", 1)[-1]
    return first not in _NOT_COPIED_DIRS and rel not in _NOT_COPIED_FILES and not name.startswith(".")


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _local_files(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if _copied(rel):
                out[rel] = _digest(os.path.join(root, rel))
    return out


def _upload_rank(rel: str) -> tuple[int, str]:
    first = rel.split("/", 1)[0]
    return (_UPLOAD_ORDER.index(first) if first in _UPLOAD_ORDER else len(_UPLOAD_ORDER), rel)


def _relocate_inputs(local: str, base: str) -> None:
    """The cluster tables name each document's file (``input``): name the object, not the local copy."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for dirpath, _, names in os.walk(os.path.join(local, "duplicates")):
        for name in names:
            path = os.path.join(dirpath, name)
            if not name.endswith(".parquet") or name.startswith("."):
                continue
            table = pq.read_table(path)
            if "input" not in table.column_names or not pa.types.is_string(table.schema.field("input").type):
                continue
            fixed = pc.replace_substring_regex(table.column("input"), "^" + re.escape(local), base)
            pq.write_table(
                table.set_column(table.column_names.index("input"), "input", fixed), path, compression="zstd"
            )


def run_on_copy(
    stage: CorpusStage,
    base: str,
    run_local: Callable[[str], dict[str, Any]],
    work_root: str | None = None,
) -> dict[str, Any]:
    """Run ``stage`` over the source at URI ``base`` (``run_local(local_copy)`` does the run); returns the stage's
    stats (``up_to_date`` when skipped)."""
    state_uri = storage.join(base, "_dedup", f"{stage.name}.json")
    current = docs_fingerprint(base, stage)
    if storage.exists(state_uri):
        state = storage.read_json(state_uri)
        if state.get("fingerprint") == current:
            return {**state["stats"], "up_to_date": True}
    work_root = work_root or os.environ.get("WINNOW_WORK_DIR") or tempfile.gettempdir()
    os.makedirs(work_root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="winnow-stage-", dir=work_root) as tmp:
        local = os.path.join(tmp, storage.basename(base))
        before: dict[str, str] = {}
        for o in storage.list_files(base):
            rel = o.uri[len(base) + 1 :]
            if _copied(rel):
                dst = os.path.join(local, *rel.split("/"))
                storage.download_file(o.uri, dst)
                before[rel] = _digest(dst)
        os.makedirs(os.path.join(local, "docs"), exist_ok=True)
        log.info("%s: stage %s on a local copy of %d file(s) in %s", base, stage.name, len(before), local)
        result = run_local(local)
        _relocate_inputs(local, base)
        after = _local_files(local)
        changed = sorted((rel for rel, d in after.items() if before.get(rel) != d), key=_upload_rank)
        for rel in changed:
            storage.upload_file(os.path.join(local, *rel.split("/")), storage.join(base, rel))
        for rel in sorted(set(before) - set(after)):
            storage.delete(storage.join(base, rel))
    stats = {k: v for k, v in result.items() if k != "work"} if isinstance(result, dict) else result
    storage.write_json(state_uri, {"fingerprint": docs_fingerprint(base, stage), "stats": stats})
    log.info("%s: stage %s uploaded %d changed file(s)", base, stage.name, len(changed))
    return stats
