"""Builders for mixture tests: a curated OUTPUT tree of small docs with the core schema and score columns."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.layout import input_key
from pipelines.core.schema import CORE_SCHEMA, extend_schema

SENTENCES = {
    "commoncrawl": [
        "The city council approved the new budget for road repairs on Tuesday evening.",
        "Our shop ships handmade ceramic mugs to most countries within five working days.",
        "Volunteers planted more than two hundred oak saplings along the river path.",
        "Read the full review of the latest hiking boots before you buy a pair.",
        "The museum will extend its opening hours during the summer holidays.",
        "Subscribe to the newsletter to get weekly recipes and seasonal cooking tips.",
    ],
    "books": [
        "It was late in the autumn when the old captain came back to the harbour town.",
        "She folded the letter twice and hid it beneath the loose board of the floor.",
        "The wind carried the sound of the church bells across the frozen marsh.",
        "He had never spoken of the war, and nobody in the village dared to ask.",
    ],
    "wikipedia": [
        "The river rises in the northern highlands and flows south for about 400 kilometres.",
        "The species was first described by the naturalist in 1834 from specimens collected in Peru.",
        "The town was granted a market charter in the thirteenth century.",
        "The album reached number three on the national chart and was certified gold.",
    ],
    "github": [
        "def parse_config(path):\n    with open(path) as f:\n        return yaml.safe_load(f)\n",
        "for item in items:\n    if item.is_valid():\n        results.append(item.value)\n",
        "class Cache:\n    def __init__(self, size):\n        self.size = size\n        self.data = {}\n",
        "# retry the request up to three times before giving up\n",
    ],
}


def make_text(rng: random.Random, source: str, n_sentences: int) -> str:
    pool = SENTENCES[source]
    sep = "" if source == "github" else " "
    return sep.join(rng.choice(pool) for _ in range(n_sentences))


def docs_table(
    source: str,
    n: int,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
    min_sentences: int = 3,
    max_sentences: int = 40,
) -> pa.Table:
    """``n`` documents of ``source`` with lang / lang_score / perplexity scores (and any ``extra`` columns)."""
    rng = random.Random(f"{source}:{seed}")
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"{source}/{seed}/{i:05d}",
                "source": source,
                "url": f"https://example.org/{source}/{i}",
                "text": make_text(rng, source, rng.randint(min_sentences, max_sentences)),
                "meta": json.dumps({"i": i}),
                "lang": "en",
                "lang_score": round(rng.uniform(0.5, 1.0), 4),
                "perplexity": round(rng.uniform(50, 900), 2),
            }
        )
    table = pa.Table.from_pylist(
        rows,
        schema=extend_schema(
            CORE_SCHEMA, {"lang": pa.string(), "lang_score": pa.float64(), "perplexity": pa.float64()}
        ),
    )
    for name, values in (extra or {}).items():
        table = table.append_column(name, pa.array(values))
    return table


def write_docs(output: str, source: str, table: pa.Table, input_name: str = "input-0") -> str:
    folder = os.path.join(output, source, "docs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{input_key(input_name)}.parquet")
    pq.write_table(table, path)
    return path


def write_mixture(path: str, sources: dict[str, dict[str, Any]], **top: Any) -> str:
    import yaml

    data = {
        "stage": top.pop("stage", "test"),
        "seed": top.pop("seed", 7),
        "total_tokens": top.pop("total_tokens", "max"),
        "shard_max_tokens": top.pop("shard_max_tokens", 5000),
        **top,
        "sources": sources,
    }
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path
