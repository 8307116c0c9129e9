"""A curated output tree with a ``topic`` column of known distribution, shared by the topic-mixture and report tests."""

from __future__ import annotations

import os
import random

import pyarrow as pa

from mixtures.build import build_stage
from mixtures.spec import load_mixture
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture

SENTENCES = {
    "arts_entertainment": [
        "The film premiered at the festival and the lead actress won praise for her quiet performance.",
        "The band's third album mixes folk ballads with loud guitar songs recorded live in one take.",
        "Critics called the novel a sprawling family saga set over three generations.",
    ],
    "sports": [
        "The striker scored twice in the second half as the home side won the league match.",
        "She finished the marathon in under three hours despite the heat on the final climb.",
    ],
    "science": [
        "The telescope measured the light curve of the star as the planet crossed in front of it.",
        "Researchers sequenced the genome of the bacterium and found two new enzymes.",
    ],
    "technology": [
        "The update fixes a memory leak in the browser and adds support for the new image format.",
        "Install the package with pip and set the environment variable before running the server.",
    ],
}
#: documents per topic: arts & entertainment is over-represented, as on the web
DOCS = {"arts_entertainment": 400, "sports": 200, "science": 200, "technology": 200}


def write_topic_corpus(out: str) -> str:
    """CommonCrawl docs with a ``topic`` column of known distribution (:data:`DOCS`); books without one."""
    rng = random.Random(3)
    rows = []
    for topic, n in DOCS.items():
        for i in range(n):
            text = " ".join(rng.choice(SENTENCES[topic]) for _ in range(rng.randint(2, 30)))
            rows.append({"id": f"cc/{topic}/{i:04d}", "text": text, "topic": topic, "topic_prob": 0.9})
    rng.shuffle(rows)
    base = docs_table("commoncrawl", len(rows))
    table = base.set_column(0, "id", pa.array([r["id"] for r in rows], pa.string()))
    table = table.set_column(3, "text", pa.array([r["text"] for r in rows], pa.large_string()))
    table = table.append_column("topic", pa.array([r["topic"] for r in rows], pa.string()))
    table = table.append_column("topic_prob", pa.array([r["topic_prob"] for r in rows], pa.float32()))
    write_docs(out, "commoncrawl", table.slice(0, 500), "cc-a")
    write_docs(out, "commoncrawl", table.slice(500), "cc-b")
    write_docs(out, "books", docs_table("books", 100, max_sentences=60), "books")
    return out


def build_topic_stage(output, tmp_path, cc_topics, books=None, **top):
    """Build a test stage of commoncrawl (with ``cc_topics`` rules) and books; returns (manifest, stage dir)."""
    sources = {
        "commoncrawl": {"share": 0.8, "max_epochs": 1.0, "topics": cc_topics},
        "books": {"share": 0.2, "max_epochs": 2.0, **(books or {})},
    }
    spec = load_mixture(path=write_mixture(str(tmp_path / "mix.yaml"), sources, **top))
    return build_stage(spec, output), os.path.join(output, "mixtures", spec.stage)
