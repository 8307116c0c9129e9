"""Removal passes: apply a duplicates table to the documents, with every removed row accounted for.

One task per input file (executor), each reading only its file group's ``removed/<g>/*`` rows and leaving a marker,
so a removal killed half-way resumes with the files not yet done; the driver holds the list of files.

* :func:`write_survivors` (standalone ``winnow dedup``): copies each input minus its removed rows to
  ``OUTPUT/docs/`` and the clusters to ``OUTPUT/duplicates/``.
* :func:`move_to_rejected` (a recipe's corpus stage): moves removed rows from ``docs/<key>.parquet`` to
  ``rejected/<key>.parquet`` with a reason, and rewrites the input's stats so ``read = kept + rejected`` holds.
  It is idempotent and safe to kill: the rejected file is replaced first (rows already there with this reason are
  not added twice), then the docs file; a rerun after a kill between the two finishes the move.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.corpus import (
    InputFile,
    exists,
    is_done,
    mark_done,
    parquet_file,
    read_folder,
    read_marker,
    read_table,
    split_gid,
    unit,
    write_parquet_atomic,
)
from pipelines.core.executor import Executor
from pipelines.core.folder import Folder, split
from pipelines.core.schema import conform

PUBLIC_COLUMNS = ["id", "cluster_id", "kept", "cluster_size", "reason", "input"]


def removed_rows(work: str, group: int, f: InputFile) -> pa.Table:
    """``(row, cluster_id, reason)`` of the rows of ``f`` to remove, sorted by row (never for protected files)."""
    t = read_folder(os.path.join(work, "removed", unit(group)))
    if f.protected or t is None or not t.num_rows:
        return pa.table(
            {
                "row": pa.array([], pa.int64()),
                "cluster_id": pa.array([], pa.string()),
                "reason": pa.array([], pa.string()),
            }
        )
    fidx, rows = split_gid(t.column("gid").to_numpy())
    mine = fidx == f.index
    t = t.filter(pa.array(mine)).append_column("row", pa.array(rows[mine]))
    return t.select(["row", "cluster_id", "reason"]).sort_by("row")


def publish_task(args: tuple[str, list[InputFile], str]) -> dict[str, Any]:
    """The public cluster table (``PUBLIC_COLUMNS``) as one Parquet file, streamed partition by partition."""
    work, files, path = args
    paths = [
        o.path for o in Folder(os.path.join(work, "duplicates")).list(suffix=".parquet", recursive=False)
    ]
    names = np.array([f.path for f in files], dtype=object)
    schema = pa.schema(
        [
            (c, pa.bool_() if c == "kept" else pa.int64() if c == "cluster_size" else pa.string())
            for c in PUBLIC_COLUMNS
        ]
    )
    folder, name = split(path)
    rows = 0
    with folder.parquet_writer(name, schema, compression="zstd") as w:  # committed whole, or nothing on error
        for p in paths:
            t = read_table(p).sort_by(
                [("cluster_id", "ascending"), ("kept", "descending"), ("id", "ascending")]
            )
            fidx, _ = split_gid(t.column("gid").to_numpy())
            t = t.append_column("input", pa.array(names[fidx].tolist(), pa.string()))
            w.write_table(t.select(PUBLIC_COLUMNS).cast(schema))
            rows += t.num_rows
    return {"rows": rows}


def output_names(files: list[InputFile]) -> dict[int, str]:
    base = Counter(os.path.basename(f.path) for f in files)
    return {
        f.index: os.path.basename(f.path)
        if base[os.path.basename(f.path)] == 1
        else f"{f.key}-{os.path.basename(f.path)}"
        for f in files
    }


def survivors_task(args: tuple[str, int, InputFile, str]) -> dict[str, Any]:
    """Standalone removal of one input: ``OUTPUT/docs/<name>`` without its removed rows; resumable."""
    work, group, f, dest = args
    if is_done(work, "removal", f.key):
        return read_marker(work, "removal", f.key)
    gone = removed_rows(work, group, f).column("row").to_numpy()
    t = read_table(f.path)
    mask = np.ones(t.num_rows, dtype=bool)
    mask[gone] = False
    write_parquet_atomic(t.filter(pa.array(mask)), dest)
    info = {"read": t.num_rows, "kept": int(mask.sum()), "removed": int((~mask).sum())}
    mark_done(work, "removal", f.key, info)
    return info


def write_survivors(res: Any, output: str, executor: Executor) -> dict[str, Any]:
    """Standalone removal: ``OUTPUT/docs/<input name>`` without removed rows, ``OUTPUT/duplicates/part-0.parquet``."""
    names = output_names(res.files)
    items = [
        (res.work, g, f, os.path.join(output, "docs", names[f.index]))
        for g, fs in enumerate(res.groups)
        for f in fs
        if not f.protected
    ]
    infos = executor.map(survivors_task, items, "dedup: write survivors")
    executor.map(publish_task, [(res.work, res.files, os.path.join(output, "duplicates", "part-0.parquet"))])
    return {"kept": sum(i["kept"] for i in infos), "removed": sum(i["removed"] for i in infos)}


def move_task(args: tuple[str, int, InputFile, str, str]) -> dict[str, Any]:
    """Pipeline removal of one docs file: its removed rows move to ``rejected/<key>.parquet``; resumable."""
    work, group, f, source_dir, rejected_by = args
    if is_done(work, "removal", f.key):
        return read_marker(work, "removal", f.key)
    gone_rows = removed_rows(work, group, f)
    rows = gone_rows.column("row").to_numpy()
    if len(rows):
        key = os.path.basename(f.path)[: -len(".parquet")]
        rej_path = os.path.join(source_dir, "rejected", f"{key}.parquet")
        docs = read_table(f.path)
        gone = docs.take(pa.array(rows))
        meta = [
            _with_cluster(m, c)
            for m, c in zip(
                gone.column("meta").to_pylist(), gone_rows.column("cluster_id").to_pylist(), strict=True
            )
        ]
        gone = gone.set_column(gone.schema.get_field_index("meta"), "meta", pa.array(meta, pa.string()))
        gone = gone.append_column("reason", gone_rows.column("reason"))
        gone = gone.append_column("rejected_by", pa.array([rejected_by] * len(rows), pa.string()))
        old = read_table(rej_path) if exists(rej_path) else None
        if old is not None:
            already = pc.is_in(
                gone.column("id"),
                value_set=old.filter(pc.equal(old.column("rejected_by"), rejected_by)).column("id"),
            )
            gone = gone.filter(pc.invert(already))
            new_rej = pa.concat_tables([old, conform(gone, old.schema)])
        else:
            new_rej = gone
        if gone.num_rows:
            write_parquet_atomic(new_rej, rej_path)  # 1) rejected first: a kill here leaves the rows in both
        mask = np.ones(docs.num_rows, dtype=bool)
        mask[rows] = False
        write_parquet_atomic(
            docs.filter(pa.array(mask)), f.path
        )  # 2) then docs; a rerun finds nothing to move
        _rewrite_stats(source_dir, key)
    info = {"moved": int(len(rows))}
    mark_done(work, "removal", f.key, info)
    return info


def move_to_rejected(res: Any, source_dir: str, rejected_by: str, executor: Executor) -> dict[str, Any]:
    """Pipeline removal, one task per docs file: removed rows move from ``docs/`` to ``rejected/``."""
    items = [
        (res.work, g, f, source_dir, rejected_by)
        for g, fs in enumerate(res.groups)
        for f in fs
        if not f.protected
    ]
    infos = executor.map(move_task, items, "dedup: removal")
    return {"moved_to_rejected": sum(i["moved"] for i in infos)}


def _with_cluster(meta: str | None, cluster: str) -> str:
    d = json.loads(meta) if meta else {}
    d["dedup_cluster"] = cluster
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


def _rewrite_stats(source_dir: str, key: str) -> None:
    """Recount kept / rejected (and rejected by reason) of one input from its files, so the counts stay true."""
    folder = Folder(source_dir)
    if not folder.isfile(f"stats/{key}.json"):
        return
    stats = folder.read_json(f"stats/{key}.json")
    kept = parquet_file(folder.uri("docs", f"{key}.parquet")).metadata.num_rows
    rej_path = os.path.join(source_dir, "rejected", f"{key}.parquet")
    reasons = Counter(read_table(rej_path, columns=["reason"]).column("reason").to_pylist())
    stats["kept"], stats["rejected"] = kept, sum(reasons.values())
    stats["rejected_by_reason"] = dict(sorted(reasons.items()))
    if stats["read"] != stats["kept"] + stats["rejected"]:
        raise AssertionError(f"{key}: read {stats['read']} != kept {kept} + rejected {stats['rejected']}")
    folder.write_json(f"stats/{key}.json", stats)
