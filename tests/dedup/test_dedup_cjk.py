"""Language-aware MinHash shingles (``tokenize: auto``): Chinese and Japanese pages are shingled by character, so a
one-sentence edit leaves them near duplicates; pages in spaced scripts keep exactly their old signatures."""

from __future__ import annotations

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.minhash import MinHashConfig, signatures
from dedup.text import jaccard, shingle_set, tokens_of
from dedup.workflow import find_near_duplicates

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
#: sha256 of the signatures of ``spaced_pages()`` under MinHashConfig() before ``tokenize`` existed (main at
#: 8b2d541): whitespace-word shingling must never change for languages written with spaces
SPACED_SIGNATURES = "a706952e1054eea9887b825c2375d967e4455a19a92aa614676968e7c54ff883"
# one sentence of each article rewritten, as a syndicated copy edits a page
ZH_EDIT = ("以前在电梯里遇见都不打招呼的邻居", "过去住了十几年都叫不出名字的邻居")
JA_EDIT = (
    "工事費は新築の半分ほどで済んだが、職人を探すのに半年以上かかった。",
    "費用は約千二百万円で、工期はおよそ十か月だった。",
)


def read(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def spaced_pages() -> list[str]:
    """English articles (tests/fixtures/semantic) and German, French, Russian ones."""
    with open(os.path.join(FIXTURES, "semantic", "articles.json"), encoding="utf-8") as f:
        arts = json.load(f)
    texts = [v for k, v in sorted(arts.items()) if not k.startswith("_")]
    return texts + [read(f"multilingual/{lang}_article.txt") for lang in ("de", "fr", "ru")]


def edited(text: str, edit: tuple[str, str]) -> str:
    assert edit[0] in text
    return text.replace(*edit)


def test_spaced_languages_keep_their_signatures():
    texts = spaced_pages()
    words, ok = signatures(texts, MinHashConfig())
    auto, ok_auto = signatures(texts, MinHashConfig(tokenize="auto"))
    assert ok.all() and ok_auto.all()
    assert hashlib.sha256(words.tobytes()).hexdigest() == SPACED_SIGNATURES
    assert (auto == words).all()


def test_unspaced_scripts_become_character_tokens():
    text = "东京塔 Tokyo Tower が見える、2024年。ภาษาไทย Café"
    assert tokens_of(text) == ["东京塔", "tokyo", "tower", "か見える", "0年", "ภาษาไทย", "cafe"]
    # kana voicing marks and Thai vowel/tone marks are combining marks, stripped as for every script
    assert tokens_of(text, "auto") == [
        *"东京塔",
        "tokyo",
        "tower",
        *"か見える",
        "0",
        "年",
        *"ภาษาไทย",
        "cafe",
    ]
    with pytest.raises(ValueError, match="tokenize"):
        MinHashConfig(tokenize="jieba")


def test_tokenize_follows_partition_by_and_keeps_old_work_folders():
    assert MinHashConfig().tokenize == "words"
    assert "tokenize" not in MinHashConfig().identity()
    assert MinHashConfig(partition_by="lang").tokenize == "auto"
    assert MinHashConfig(partition_by="lang").identity()["tokenize"] == "auto"
    assert MinHashConfig(partition_by="lang", tokenize="words").tokenize == "words"


def test_cjk_near_duplicates_found_by_characters_not_by_whitespace_words(tmp_path):
    zh, ja = read("multilingual/zh_article.txt"), read("multilingual/ja_article.txt")
    docs = {
        "id": ["zh", "zh-edited", "zh-same-topic", "ja", "ja-edited", "en", "en-other"],
        "text": [
            zh,
            edited(zh, ZH_EDIT),
            read("multilingual/zh_article_same_topic.txt"),
            ja,
            edited(ja, JA_EDIT),
            *spaced_pages()[:2],
        ],
        "lang": ["zh", "zh", "zh", "ja", "ja", "en", "en"],
    }
    os.makedirs(tmp_path / "docs")
    pq.write_table(pa.table(docs), tmp_path / "docs" / "a.parquet")
    # the edits keep ~90% of the character 5-grams but break most 5-grams of whitespace "words" (clauses)
    for a, b in ((0, 1), (3, 4)):
        ta, tb = docs["text"][a], docs["text"][b]
        assert jaccard(shingle_set(ta, 5, "auto"), shingle_set(tb, 5, "auto")) > 0.85
        assert jaccard(shingle_set(ta), shingle_set(tb)) < 0.75

    def clusters(name: str, **settings) -> set[frozenset[str]]:
        cfg = MinHashConfig(executor="local", partition_by="lang", **settings)
        res = find_near_duplicates([str(tmp_path / "docs")], str(tmp_path / name), cfg)
        d = res.duplicates.to_pydict()
        out: dict[str, set[str]] = {}
        for doc, cluster in zip(d["id"], d["cluster_id"], strict=True):
            out.setdefault(cluster, set()).add(doc)
        return {frozenset(c) for c in out.values()}

    assert clusters("auto") == {frozenset({"zh", "zh-edited"}), frozenset({"ja", "ja-edited"})}
    assert clusters("words", tokenize="words") == set()
