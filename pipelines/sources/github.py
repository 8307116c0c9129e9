"""GitHub code recipe (RedPajama v1 / LLaMA-1): repository → license → header strip → line statistics → filter.

The license is the repository's (detected by the reader, which sees the whole tree), decided by ``license_filter``.
Exact file-level dedup (md5 of the cleaned content, RedPajama's rule) is a corpus stage: it runs once every
repository is written, since duplicates cross repositories.  It is the partitioned exact dedup of ``dedup/`` (hash →
hash partitions → group-by, memory bounded by a partition, not by the corpus); removed files move to ``rejected/``
(``dedup:exact_md5``) and the clusters go to ``duplicates/exact_md5.parquet``, which the ``duplicates`` view and the
report read.
"""

from __future__ import annotations

from typing import Any

from dedup.stages import ExactDedupStage
from filters.code import CodeQualityFilter, CodeStats, StripLicenseHeader
from filters.licenses import LicenseFilter
from pipelines.core.recipe import Recipe
from pipelines.readers.github import GithubReader
from pipelines.sources.compose import assemble

STEPS = {
    "license_filter": LicenseFilter,
    "strip_header": StripLicenseHeader,
    "code_stats": CodeStats,
    "code_filter": CodeQualityFilter,
}


CORPUS_STAGES = {
    "exact_md5": ExactDedupStage,
}


def build_recipe(config: dict[str, Any]) -> Recipe:
    # the section was `exact_dedup:` before corpus stages were declared like steps
    return assemble(
        "github", GithubReader, STEPS, config, CORPUS_STAGES, renamed_stages={"exact_dedup": "exact_md5"}
    )
