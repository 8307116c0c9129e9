"""Semantic dedup and languages: the shipped encoder is English-trained, so pages in other languages are left
unembedded (never paired, counted as ``skipped_language``) unless the user names a model (``model_dir``) or
``languages``."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.semantic_embed import SemanticConfig
from dedup.stages import SemanticDedupStage
from pipelines.core.corpus_stage import run_stage
from tests.helpers.paths import FIXTURES

with open(os.path.join(FIXTURES, "semantic", "articles.json"), encoding="utf-8") as _f:
    ARTICLES = {k: v for k, v in json.load(_f).items() if k[0] != "_"}
FOREIGN = ("de", "fr", "ru", "zh")


def _source(root: str) -> str:
    """English articles (one reworded pair) and German, French, Russian, Chinese articles, with ``lang``."""
    texts, ids, langs = [], [], []
    for name in ("lighthouse", "lighthouse_reworded", "chess", "garden"):
        ids.append(name), texts.append(ARTICLES[name]), langs.append("en")
    for lang in FOREIGN:
        with open(os.path.join(FIXTURES, "multilingual", f"{lang}_article.txt"), encoding="utf-8") as f:
            ids.append(f"{lang}-article"), texts.append(f.read()), langs.append(lang)
    os.makedirs(os.path.join(root, "docs"))
    n = len(ids)
    t = pa.table(
        {
            "id": ids,
            "source": ["commoncrawl"] * n,
            "text": texts,
            "url": [f"https://example.org/{i}" for i in ids],
            "meta": ["{}"] * n,
            "lang": langs,
        }
    )
    pq.write_table(t, os.path.join(root, "docs", "part-0.parquet"))
    return root


def _stats(root: str, **settings) -> dict:
    stage = SemanticDedupStage(settings={"threshold": 0.8, "clusters": 1, "executor": "local", **settings})
    return run_stage(stage, _source(root))


def test_languages_follow_the_model():
    assert SemanticConfig().languages == ["en"]  # the shipped English word vectors
    assert SemanticConfig(model_dir="/models/multilingual-e5").languages == ["all"]
    assert SemanticConfig(languages=["en", "de"]).languages == ["en", "de"]
    with pytest.raises(ValueError, match="semantic_dedup.languages"):
        SemanticConfig(languages=["jp"])


def test_pages_in_other_languages_are_left_unembedded(tmp_path):
    default = _stats(str(tmp_path / "default"))
    assert default["skipped_language"] == len(FOREIGN)
    assert default["embedded"] == 4  # the English pages only
    assert default["removed"] == 1  # the reworded English pair still found
    # every language embedded: German and French get vectors from the few English words they contain (names,
    # numbers, loanwords); Russian and Chinese share none with the English vocabulary and stay zero anyway
    every = _stats(str(tmp_path / "all"), languages=["all"])
    assert every["skipped_language"] == 0
    assert every["embedded"] == 6
