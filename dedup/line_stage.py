"""LLaMA-3 line dedup over a whole source: count lines per bucket across every input, then rewrite each docs file.

Passes, each a set of tasks with results on disk and a marker per task (a killed run resumes):

1. **hash** (one task per docs file): every line → ``(bucket, line hash)`` key (:mod:`dedup.lines`); the file's
   distinct keys with their counts go to ``hashes/<partition>/<file>.parquet``, partition = key % P.
2. **count** (one task per partition): sums the counts of its partition over all files (memory: one partition,
   never the whole corpus), writes ``counts-<p>.parquet`` (keys seen twice or more, for DuckDB and the
   ``mode: counts`` step), and for every file the keys of that file that are frequent (> ``max_count``) to
   ``hits/<file>/<p>.parquet``: a partitioned join, so no task ever holds all frequent lines.
3. **rewrite** (stage only, one task per docs file): loads only its own hits (a sorted array, looked up with
   ``searchsorted``), drops those lines, moves documents left empty to ``rejected/`` (``line_dedup:empty``) and
   recounts the input's stats.  Rejected rows are written before the docs file, and a rerun of a file whose docs
   were already rewritten changes nothing (its frequent lines are gone), so a kill at any point is safe.

P grows with the corpus: ``max(partitions, ceil(docs / partition_docs))``.  Buckets: ``ceil(docs / bucket_docs)``.
The work folder is named from the docs listing the stage started on, which ``pipelines.core.corpus_stage.run_stage``
records until the rewrite is complete, so a rerun after a kill resumes with the counts of the original text (the
docs fingerprint changes as files are rewritten).

Every file (docs, rejected, stats, the work folder and its markers) is read and written through the storage object
(:mod:`pipelines.core.folder`), so the stage runs in place on ``s3://`` / ``gs://``: each task reads and writes the
bucket itself and no machine holds a copy of the source.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.corpus import (
    InputFile,
    exists,
    fingerprint,
    is_done,
    mark_done,
    parquet_file,
    read_marker,
    read_table,
    remove_tree,
    write_parquet_atomic,
)
from dedup.lines import EMPTY_REASON, doc_line_keys, drop_lines, normalizer, row_salts, sorted_contains
from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.executor import Executor, get_executor
from pipelines.core.folder import Folder
from pipelines.core.storage import basename, join

log = logging.getLogger(__name__)
#: on-disk layout of the work folder (part of its name)
LAYOUT = 1


@dataclass(frozen=True)
class LineDedupConfig:
    """Settings of the line-count passes and the stage (the ``line_dedup`` section of a source config)."""

    max_count: int = 6  # LLaMA-3: lines seen more than 6 times per bucket go (CCNet: 1)
    bucket_docs: int = 30_000_000  # LLaMA-3's bucket; 0: one bucket over the whole source
    normalization: str = "ccnet"  # or "datatrove" (dedup/lines.py says how they differ)
    partitions: int = 16  # hash partitions, at least
    partition_docs: int = 1_000_000  # one more partition per this many documents
    batch_rows: int = 2000
    executor: str = "local"  # local | process | ray
    workers: int = 2
    #: a column (``lang``) whose values count apart: a line repeated on pages of one language never removes it
    #: from pages of another (a file without the column counts as null); None: one count per bucket
    partition_by: str | None = None

    def __post_init__(self) -> None:
        normalizer(self.normalization)
        if self.partition_by == "auto":
            raise ValueError(
                "line_dedup partition_by: 'auto' is resolved by the source recipe; a column or null"
            )
        if self.max_count < 1:
            raise ValueError(f"line_dedup max_count must be >= 1, got {self.max_count}")

    def identity(self) -> dict[str, Any]:
        """The settings the result depends on (not how it is executed)."""
        d = asdict(self)
        for k in ("batch_rows", "executor", "workers"):
            d.pop(k)
        if not d[
            "partition_by"
        ]:  # unpartitioned counts keep the work folders made before the setting existed
            d.pop("partition_by")
        return {**d, "layout": LAYOUT}


def file_key(f: InputFile) -> str:
    """A docs file's name in the work folder: its own name (stable when other files come or go)."""
    return basename(f.path)[: -len(".parquet")]


def plan(files: list[InputFile], cfg: LineDedupConfig) -> dict[str, int]:
    docs = sum(parquet_file(f.path).metadata.num_rows for f in files)
    buckets = 1 if cfg.bucket_docs <= 0 else max(1, math.ceil(docs / cfg.bucket_docs))
    parts = max(cfg.partitions, math.ceil(docs / max(1, cfg.partition_docs)))
    return {"docs": docs, "buckets": buckets, "partitions": parts}


def hash_task(args: tuple[InputFile, str, LineDedupConfig, int, int]) -> dict[str, Any]:
    """Pass 1 for one docs file: distinct (bucket, line) keys with counts, split into hash partitions."""
    f, work, cfg, n_buckets, n_parts = args
    key = file_key(f)
    if is_done(work, "line_hashes", key):
        return read_marker(work, "line_hashes", key)
    norm = normalizer(cfg.normalization)
    chunks = []
    pf = parquet_file(f.path)
    part = cfg.partition_by if cfg.partition_by in pf.schema_arrow.names else None
    for rb in pf.iter_batches(batch_size=cfg.batch_rows, columns=["id", "text"] + ([part] if part else [])):
        salts = row_salts(pa.Table.from_batches([rb]), part).tolist()
        for doc_id, text, salt in zip(rb.column(0).to_pylist(), rb.column(1).to_pylist(), salts, strict=True):
            _, keys, has = doc_line_keys(doc_id or "", text or "", n_buckets, norm, salt)
            chunks.append(keys[has])
    keys = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
    uniq, counts = np.unique(keys, return_counts=True)
    part = (uniq % np.uint64(n_parts)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
    for p in range(n_parts):
        sel = order[bounds[p] : bounds[p + 1]]
        if len(sel):  # no file for an empty partition: pass 2 starts only after every file of pass 1 is done
            write_parquet_atomic(
                pa.table({"key": uniq[sel], "count": counts[sel].astype(np.int64)}),
                join(work, "hashes", f"{p:05d}", f"{key}.parquet"),
            )
    info = {"lines": int(len(keys)), "distinct": int(len(uniq))}
    mark_done(work, "line_hashes", key, info)
    return info


def count_task(args: tuple[int, str, LineDedupConfig, bool]) -> dict[str, Any]:
    """Pass 2 for one partition: total counts, ``counts-<p>.parquet``, and per-file frequent keys (``hits/``)."""
    p, work, cfg, hits = args
    unit = f"{p:05d}"
    if is_done(work, "line_counts", unit):
        return read_marker(work, "line_counts", unit)
    paths = [o.path for o in Folder(join(work, "hashes", unit)).list(suffix=".parquet", recursive=False)]
    tables = [read_table(x) for x in paths]
    keys = np.concatenate([t.column("key").to_numpy() for t in tables]) if tables else np.zeros(0, np.uint64)
    cnt = np.concatenate([t.column("count").to_numpy() for t in tables]) if tables else np.zeros(0, np.int64)
    uniq, inv = np.unique(keys, return_inverse=True)
    total = np.bincount(inv, weights=cnt, minlength=len(uniq)).astype(np.int64)
    rep = total > 1
    write_parquet_atomic(
        pa.table({"key": uniq[rep], "count": total[rep]}), join(work, f"counts-{unit}.parquet")
    )
    frequent = uniq[total > cfg.max_count]  # sorted, as np.unique returns it
    for path, t in zip(paths, tables if hits else [], strict=False):
        k = t.column("key").to_numpy()
        hit = k[sorted_contains(frequent, k)]
        if len(hit):
            name = basename(path)[: -len(".parquet")]
            write_parquet_atomic(pa.table({"key": hit}), join(work, "hits", name, f"{unit}.parquet"))
    info = {"distinct": int(len(uniq)), "repeated": int(rep.sum()), "frequent": int(len(frequent))}
    mark_done(work, "line_counts", unit, info)
    return info


def count_lines(
    files: list[InputFile],
    work: str,
    cfg: LineDedupConfig,
    hits: bool = True,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Passes 1 and 2 over ``files``; writes ``meta.json`` (what the ``mode: counts`` step reads) and returns it.

    ``hits``: also write each file's frequent keys (what the rewrite pass reads).  ``executor``: where the tasks
    run (default: the one ``cfg`` names)."""
    folder = Folder(work)
    if folder.isfile("meta.json"):
        meta = folder.read_json("meta.json")
        if meta.get("settings") != cfg.identity():
            raise ValueError(
                f"{work} holds line counts made with other settings ({meta.get('settings')}): "
                "count into a new folder"
            )
        return meta
    executor = executor or get_executor(cfg.executor, cfg.workers)
    sizes = plan(files, cfg)
    hashed = executor.map(
        hash_task, [(f, work, cfg, sizes["buckets"], sizes["partitions"]) for f in files], "line hashes"
    )
    counted = executor.map(
        count_task, [(p, work, cfg, hits) for p in range(sizes["partitions"])], "line counts"
    )
    meta = {
        **sizes,
        "normalization": cfg.normalization,
        "max_count": cfg.max_count,
        "lines": sum(h["lines"] for h in hashed),
        "distinct_lines": sum(c["distinct"] for c in counted),
        "frequent_lines": sum(c["frequent"] for c in counted),
        "settings": cfg.identity(),
    }
    folder.write_json("meta.json", meta)
    return meta


def _frequent_of(work: str, key: str) -> np.ndarray:
    parts = Folder(join(work, "hits", key)).list(suffix=".parquet", recursive=False)
    keys = [read_table(p.path).column("key").to_numpy() for p in parts]
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)


def rewrite_task(args: tuple[InputFile, str, LineDedupConfig, int, str, str]) -> dict[str, Any]:
    """Pass 3 for one docs file: drop its frequent lines; documents left empty move to ``rejected/``."""
    from dedup.removal import _rewrite_stats
    from pipelines.core.schema import conform

    f, work, cfg, n_buckets, source_dir, name = args
    key = file_key(f)
    if is_done(work, "line_rewrite", key):
        return read_marker(work, "line_rewrite", key)
    frequent = _frequent_of(work, key)
    info = {"docs": parquet_file(f.path).metadata.num_rows, "changed": 0, "emptied": 0, "lines_removed": 0}
    if len(frequent):
        norm = normalizer(cfg.normalization)
        docs = read_table(f.path)
        out, empty = [], np.zeros(docs.num_rows, bool)
        salts = row_salts(docs, cfg.partition_by).tolist()
        for i, (doc_id, text) in enumerate(
            zip(docs.column("id").to_pylist(), docs.column("text").to_pylist(), strict=True)
        ):
            text = text or ""
            lines, keys, has = doc_line_keys(doc_id or "", text, n_buckets, norm, salts[i])
            drop = sorted_contains(frequent, keys) & has
            if drop.any():
                info["changed"] += 1
                info["lines_removed"] += int(drop.sum())
                text = drop_lines(lines, drop)
                empty[i] = not text.strip()
            out.append(text)
        idx = docs.schema.get_field_index("text")
        docs = docs.set_column(idx, docs.schema.field(idx), pa.array(out, docs.schema.field(idx).type))
        info["emptied"] = int(empty.sum())
        if empty.any():
            gone = docs.filter(pa.array(empty))
            gone = gone.append_column("reason", pa.array([EMPTY_REASON] * gone.num_rows, pa.string()))
            gone = gone.append_column("rejected_by", pa.array([name] * gone.num_rows, pa.string()))
            rej_path = join(source_dir, "rejected", f"{key}.parquet")
            if exists(rej_path):
                old = read_table(rej_path)
                already = pc.is_in(
                    gone.column("id"),
                    value_set=old.filter(pc.equal(old.column("rejected_by"), name)).column("id"),
                )
                gone = pa.concat_tables([old, conform(gone.filter(pc.invert(already)), old.schema)])
            write_parquet_atomic(gone, rej_path)  # 1) rejected first: a kill here leaves the rows in both
        if info["changed"]:
            write_parquet_atomic(docs.filter(pa.array(~empty)), f.path)  # 2) then the docs
            _rewrite_stats(source_dir, key)
    mark_done(work, "line_rewrite", key, info)
    return info


@dataclass
class LineDedupStage(CorpusStage):
    """Corpus stage: LLaMA-3 line dedup over a source's written docs (settings: :class:`LineDedupConfig`).

    Its work folder is named from the listing it started on (``_dedup/line_dedup-<fingerprint>``); the folder of
    an earlier round is removed when a new one starts (its ``counts-*.parquet`` stay until then, for DuckDB)."""

    name: str = "line_dedup"
    reason: str = EMPTY_REASON
    in_place = True  # reads and writes through the storage object: runs on s3:// without a local copy
    settings: dict[str, Any] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)  # none: line counts never read another source

    def validate(self) -> None:
        self.config()

    def config(self) -> LineDedupConfig:
        return LineDedupConfig(**self.settings)

    def identity(self) -> dict[str, Any]:
        return self.config().identity()

    def executor(self) -> Executor:
        cfg = self.config()
        return get_executor(cfg.executor, cfg.workers)

    def run(self, source_dir: str, files: list[InputFile], executor: Executor) -> dict[str, Any]:
        cfg = self.config()
        name = f"{self.name}-{fingerprint(files, self.identity())}"
        dedup_dir = Folder(join(source_dir, "_dedup"))
        work = dedup_dir.uri(name)
        for old in dedup_dir.folders():
            if old.startswith(f"{self.name}-") and old != name:  # the work of an earlier, finished round
                remove_tree(dedup_dir.uri(old))
        meta = count_lines(files, work, cfg, executor=executor)
        rewritten = executor.map(
            rewrite_task,
            [(f, work, cfg, meta["buckets"], source_dir, self.name) for f in files],
            "line rewrite",
        )
        stats = {
            **{
                k: meta[k]
                for k in ("docs", "buckets", "partitions", "lines", "distinct_lines", "frequent_lines")
            },
            **{k: sum(r[k] for r in rewritten) for k in ("changed", "emptied", "lines_removed")},
        }
        remove_tree(join(work, "hashes"))  # counts-*.parquet stay for DuckDB
        log.info(
            "%s: %d docs, %d lines removed from %d docs",
            self.name,
            stats["docs"],
            stats["lines_removed"],
            stats["changed"],
        )
        return stats
