"""Removal passes: apply a duplicates table to the documents, with every removed row accounted for.

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
import pyarrow.parquet as pq

from dedup.corpus import InputFile, is_done, mark_done, split_gid, write_parquet_atomic
from pipelines.core.layout import write_json_atomic
from pipelines.core.schema import conform

PUBLIC_COLUMNS = ["id", "cluster_id", "kept", "cluster_size", "reason", "input"]


def removed_rows(dups: pa.Table, files: list[InputFile]) -> dict[int, np.ndarray]:
    """Row numbers to remove, per file index (protected files never appear)."""
    gone = dups.filter(pc.invert(dups.column("kept")))
    fidx, rows = split_gid(gone.column("gid").to_numpy())
    out: dict[int, np.ndarray] = {}
    for f in np.unique(fidx).tolist():
        if not files[f].protected:
            out[f] = np.sort(rows[fidx == f])
    return out


def public_duplicates(dups: pa.Table, files: list[InputFile]) -> pa.Table:
    fidx, _ = split_gid(dups.column("gid").to_numpy())
    paths = [files[i].path for i in fidx.tolist()]
    t = dups.append_column("input", pa.array(paths, pa.string()))
    return t.select(PUBLIC_COLUMNS)


def output_names(files: list[InputFile]) -> dict[int, str]:
    base = Counter(os.path.basename(f.path) for f in files)
    return {
        f.index: os.path.basename(f.path)
        if base[os.path.basename(f.path)] == 1
        else f"{f.key}-{os.path.basename(f.path)}"
        for f in files
    }


def write_survivors(dups: pa.Table, files: list[InputFile], output: str, work: str) -> dict[str, Any]:
    """Standalone removal: ``OUTPUT/docs/<input name>`` without removed rows, ``OUTPUT/duplicates/part-0.parquet``."""
    remove = removed_rows(dups, files)
    names = output_names(files)
    kept = removed = 0
    for f in files:
        if f.protected:
            continue
        if is_done(work, "removal", f.key):
            info = json.load(open(os.path.join(work, "_done", "removal", f"{f.key}.json"), encoding="utf-8"))
        else:
            t = pq.read_table(f.path)
            mask = np.ones(t.num_rows, dtype=bool)
            mask[remove.get(f.index, np.zeros(0, np.int64))] = False
            write_parquet_atomic(t.filter(pa.array(mask)), os.path.join(output, "docs", names[f.index]))
            info = {"read": t.num_rows, "kept": int(mask.sum()), "removed": int((~mask).sum())}
            mark_done(work, "removal", f.key, info)
        kept += info["kept"]
        removed += info["removed"]
    write_parquet_atomic(public_duplicates(dups, files), os.path.join(output, "duplicates", "part-0.parquet"))
    return {"kept": kept, "removed": removed}


def move_to_rejected(
    dups: pa.Table, files: list[InputFile], source_dir: str, rejected_by: str
) -> dict[str, Any]:
    """Pipeline removal: move removed rows of ``<source>/docs/<key>.parquet`` to ``rejected/<key>.parquet``."""
    remove = removed_rows(dups, files)
    by_gid = np.argsort(dups.column("gid").to_numpy(), kind="stable")  # a gid's row in `dups`: binary search
    sorted_gid = dups.column("gid").to_numpy()[by_gid]
    moved = 0
    for fi, rows in remove.items():
        f = files[fi]
        key = os.path.basename(f.path)[: -len(".parquet")]
        rej_path = os.path.join(source_dir, "rejected", f"{key}.parquet")
        docs = pq.read_table(f.path)
        gone = docs.take(pa.array(rows))
        gids = (np.uint64(fi) << np.uint64(32)) | rows.astype(np.uint64)
        at = pa.array(by_gid[np.searchsorted(sorted_gid, gids)])
        reasons = dups.column("reason").take(at).to_pylist()
        meta = [
            _with_cluster(m, c)
            for m, c in zip(
                gone.column("meta").to_pylist(), dups.column("cluster_id").take(at).to_pylist(), strict=True
            )
        ]
        gone = gone.set_column(gone.schema.get_field_index("meta"), "meta", pa.array(meta, pa.string()))
        gone = gone.append_column("reason", pa.array(reasons, pa.string()))
        gone = gone.append_column("rejected_by", pa.array([rejected_by] * len(rows), pa.string()))
        old = pq.read_table(rej_path) if os.path.exists(rej_path) else None
        if old is not None:
            already = pc.is_in(
                gone.column("id"),
                value_set=old.filter(pc.equal(old.column("rejected_by"), rejected_by)).column("id"),
            )
            gone = gone.filter(pc.invert(already))
            schema = old.schema
            new_rej = pa.concat_tables([old, conform(gone, schema)])
        else:
            new_rej = gone
        if gone.num_rows:
            write_parquet_atomic(new_rej, rej_path)  # 1) rejected first: a kill here leaves the rows in both
        mask = np.ones(docs.num_rows, dtype=bool)
        mask[rows] = False
        write_parquet_atomic(
            docs.filter(pa.array(mask)), f.path
        )  # 2) then docs; a rerun finds nothing to move
        moved += len(rows)
        _rewrite_stats(source_dir, key)
    return {"moved_to_rejected": moved}


def _with_cluster(meta: str | None, cluster: str) -> str:
    d = json.loads(meta) if meta else {}
    d["dedup_cluster"] = cluster
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


def _rewrite_stats(source_dir: str, key: str) -> None:
    """Recount kept / rejected (and rejected by reason) of one input from its files, so the counts stay true."""
    path = os.path.join(source_dir, "stats", f"{key}.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        stats = json.load(f)
    kept = pq.ParquetFile(os.path.join(source_dir, "docs", f"{key}.parquet")).metadata.num_rows
    rej_path = os.path.join(source_dir, "rejected", f"{key}.parquet")
    reasons = Counter(pq.read_table(rej_path, columns=["reason"]).column("reason").to_pylist())
    stats["kept"], stats["rejected"] = kept, sum(reasons.values())
    stats["rejected_by_reason"] = dict(sorted(reasons.items()))
    if stats["read"] != stats["kept"] + stats["rejected"]:
        raise AssertionError(f"{key}: read {stats['read']} != kept {kept} + rejected {stats['rejected']}")
    write_json_atomic(path, stats)
