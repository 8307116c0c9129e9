"""GitHub code recipe (RedPajama v1 / LLaMA-1): repository → license → header strip → line statistics → filter.

The license is the repository's (detected by the reader, which sees the whole tree), decided by ``license_filter``.
Exact file-level dedup (md5 of the cleaned content) is a corpus stage: it runs once every repository is written,
since duplicates cross repositories.  It is this recipe's own small stage because ``dedup/`` had no exact-dedup stage
when this was written; swap it for the dedup package's stage by name in ``corpus_stages`` once that exists.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from filters.code import CodeQualityFilter, CodeStats, StripLicenseHeader
from filters.licenses import LicenseFilter
from pipelines.core.layout import tmp_name, write_json_atomic
from pipelines.core.process import PARQUET_OPTIONS
from pipelines.core.recipe import Recipe
from pipelines.core.schema import conform
from pipelines.readers.github import GithubReader
from pipelines.sources.compose import assemble

log = logging.getLogger(__name__)

STEPS = {
    "license_filter": LicenseFilter,
    "strip_header": StripLicenseHeader,
    "code_stats": CodeStats,
    "code_filter": CodeQualityFilter,
}


@dataclass
class ExactFileDedup:
    """Corpus stage: among files with the same md5 of their text, keep the smallest id; move the others to
    ``rejected/`` (reason ``dedup:exact_md5``) in the files of the input they came from, fix that input's stats,
    and write the id list to ``dedup/exact_md5.parquet``.  Idempotent: a rerun finds no duplicate left."""

    name: str = "exact_md5"
    reason: str = "dedup:exact_md5"

    def run(self, source_dir: str) -> dict[str, Any]:
        docs = sorted(glob.glob(os.path.join(source_dir, "docs", "*.parquet")))
        first: dict[bytes, str] = {}
        entries: list[tuple[str, str, bytes]] = []  # (key, id, md5)
        for path in docs:
            key = os.path.basename(path)[: -len(".parquet")]
            table = pq.read_table(path, columns=["id", "text"])
            for doc_id, text in zip(
                table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True
            ):
                digest = hashlib.md5((text or "").encode("utf-8")).digest()
                entries.append((key, doc_id, digest))
                if digest not in first or doc_id < first[digest]:
                    first[digest] = doc_id
        dups: dict[str, dict[str, str]] = {}
        for key, doc_id, digest in entries:
            if first[digest] != doc_id:
                dups.setdefault(key, {})[doc_id] = first[digest]
        pairs = [(d, k) for per_key in dups.values() for d, k in per_key.items()]
        os.makedirs(os.path.join(source_dir, "dedup"), exist_ok=True)
        listing = os.path.join(source_dir, "dedup", f"{self.name}.parquet")
        tmp = tmp_name(listing)
        pq.write_table(
            pa.table(
                {"id": [p[0] for p in pairs], "dup_of": [p[1] for p in pairs]},
                schema=pa.schema([("id", pa.string()), ("dup_of", pa.string())]),
            ),
            tmp,
        )
        os.replace(tmp, listing)
        for key, ids in dups.items():
            self._remove(source_dir, key, set(ids))
        log.info("%s: %d files, %d exact duplicates removed", self.name, len(entries), len(pairs))
        return {"files": len(entries), "duplicates": len(pairs)}

    def _remove(self, source_dir: str, key: str, ids: set[str]) -> None:
        docs_path = os.path.join(source_dir, "docs", f"{key}.parquet")
        rej_path = os.path.join(source_dir, "rejected", f"{key}.parquet")
        docs = pq.read_table(docs_path)
        mask = pa.array([i in ids for i in docs.column("id").to_pylist()])
        moved, kept = docs.filter(mask), docs.filter(pa.compute.invert(mask))
        rejected = pq.read_table(rej_path)
        already = {
            i
            for i, r in zip(
                rejected.column("id").to_pylist(), rejected.column("reason").to_pylist(), strict=True
            )
            if r == self.reason
        }
        moved = moved.filter(pa.array([i not in already for i in moved.column("id").to_pylist()]))
        moved = moved.append_column("reason", pa.array([self.reason] * moved.num_rows, pa.string()))
        moved = moved.append_column("rejected_by", pa.array([self.name] * moved.num_rows, pa.string()))
        # rejected first: a crash in between leaves a row in both (fixed by the rerun), never in neither
        for path, table in (
            (rej_path, pa.concat_tables([rejected, conform(moved, rejected.schema)])),
            (docs_path, kept),
        ):
            tmp = tmp_name(path)
            pq.write_table(table, tmp, **PARQUET_OPTIONS)
            os.replace(tmp, path)
        stats_path = os.path.join(source_dir, "stats", f"{key}.json")
        if os.path.exists(stats_path):
            with open(stats_path, encoding="utf-8") as f:
                stats = json.load(f)
            stats["kept"] = kept.num_rows
            stats["rejected"] = stats["read"] - kept.num_rows
            by_reason = stats.setdefault("rejected_by_reason", {})
            by_reason[self.reason] = by_reason.get(self.reason, 0) + moved.num_rows
            write_json_atomic(stats_path, stats)


def build_recipe(config: dict[str, Any]) -> Recipe:
    stages = [ExactFileDedup()] if (config.get("exact_dedup") or {}).get("enabled", True) else []
    return assemble("github", GithubReader, STEPS, config, corpus_stages=stages)
