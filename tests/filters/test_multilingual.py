"""Multilingual web (issue 18, part 4): the heuristics route every page to a word tokenizer and settings of its
language, so Chinese, Japanese and Thai pages are never judged by whitespace words.

Fixture pages (tests/fixtures/multilingual, written for these tests: news-style paragraphs in eight languages and
one Japanese navigation page) go through LID and the four rule steps built from the shipped commoncrawl.yaml."""

from __future__ import annotations

import glob
import os

import pyarrow as pa
import pytest

from filters.heuristics import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from filters.langid import LanguageFilter, LanguageID
from pipelines.core.steps import build_step
from pipelines.sources.registry import load_config
from tests.helpers.paths import FIXTURES

PAGES = os.path.join(FIXTURES, "multilingual")
RULES = {"gopher_rep": GopherRepetition, "gopher": GopherQuality, "c4": C4Quality, "fineweb": FineWebQuality}
UNSPACED_PAGES = ("ja_article", "zh_article", "th_article")


def shipped_rules(**override) -> dict[str, object]:
    """The rule steps with the settings of pipelines/sources/configs/commoncrawl.yaml (its per_language too)."""
    steps = load_config("commoncrawl")["steps"]
    return {
        name: build_step(cls, {**steps[name], "name": name, **override}, name) for name, cls in RULES.items()
    }


@pytest.fixture(scope="module")
def pages() -> pa.Table:
    paths = sorted(glob.glob(os.path.join(PAGES, "*.txt")))
    table = pa.table(
        {
            "id": [os.path.basename(p)[: -len(".txt")] for p in paths],
            "text": [open(p, encoding="utf-8").read() for p in paths],
        }
    )
    return LanguageID()(table).table


def verdicts(rules: dict[str, object], table: pa.Table) -> dict[str, dict[str, str | None]]:
    """{page: {rule: reason or None}}."""
    ids = table.column("id").to_pylist()
    out: dict[str, dict[str, str | None]] = {i: {} for i in ids}
    for name, rule in rules.items():
        for i, reason in zip(ids, rule(table).reasons, strict=True):
            out[i][name] = reason
    return out


def test_lid_names_each_fixture_language(pages):
    langs = dict(zip(pages.column("id").to_pylist(), pages.column("lang").to_pylist(), strict=True))
    assert {k: v for k, v in langs.items() if k.endswith("_article")} == {
        f"{code}_article": code for code in ("ar", "de", "fr", "ja", "ko", "ru", "th", "zh")
    }
    kept = LanguageFilter(languages=["all"])(pages).reasons
    assert kept == [None] * pages.num_rows  # every language passes `all`


def test_articles_in_every_script_are_kept_and_the_navigation_page_is_not(pages):
    result = verdicts(shipped_rules(), pages)
    for page, reasons in result.items():
        if page.endswith("_article"):
            assert reasons == dict.fromkeys(RULES), (page, reasons)
    # a menu of five Japanese words: rejected for what it is (too short, repetitive), with Japanese words
    nav = result["ja_nav"]
    assert nav["gopher"] == "gopher:short_doc" and nav["fineweb"] == "fineweb:line_punct_ratio"


def test_cjk_and_thai_pages_were_rejected_when_words_were_counted_by_spaces(pages):
    """The same pages, every row judged as English (spaCy's English tokenizer, English stop words): the pages of
    languages written without spaces come out as a handful of 'words' and fail Gopher for it."""
    routed = verdicts(shipped_rules(), pages)
    by_spaces = verdicts(shipped_rules(language_column=None), pages)
    for page in UNSPACED_PAGES:
        assert by_spaces[page]["gopher"] == "gopher:short_doc", (page, by_spaces[page])
        assert routed[page]["gopher"] is None
    # and the spaced European pages fail only the English stop-word rule (their own stop words pass them)
    for page in ("de_article", "fr_article", "ru_article"):
        assert by_spaces[page]["gopher"] == "gopher:enough_stop_words"
        assert routed[page]["gopher"] is None


def test_word_counts_come_from_the_languages_tokenizer():
    from filters.languages import load_language_tokenizer

    for lang in ("zh", "ja", "th"):
        text = open(os.path.join(PAGES, f"{lang}_article.txt"), encoding="utf-8").read()
        words = load_language_tokenizer(lang).word_tokenize(text)
        assert len(text.split()) < 40 < 150 < len(words), (lang, len(text.split()), len(words))
        assert max(len(w) for w in words) < 20  # words, not whole clauses


def test_per_language_settings_change_only_that_language(pages):
    """A threshold set for German moves German pages only; the reason name is the rule's usual one."""
    strict = GopherQuality(name="gopher", per_language={"de": {"min_doc_words": 10_000}})
    reasons = dict(zip(pages.column("id").to_pylist(), strict(pages).reasons, strict=True))
    assert reasons["de_article"] == "gopher:short_doc"
    assert reasons["fr_article"] is None and reasons["ja_article"] == "gopher:below_avg_threshold"


def test_bad_language_settings_fail_when_the_config_is_read():
    with pytest.raises(ValueError, match="unknown language code"):
        LanguageFilter(languages=["jp"])
    with pytest.raises(ValueError, match="per_language.ja: unknown datatrove parameter"):
        GopherQuality(per_language={"ja": {"min_words": 3}})
    with pytest.raises(ValueError, match="unknown language code"):
        C4Quality(per_language={"japanese": {"min_words_per_line": -1}})


def test_language_filter_reasons():
    table = pa.table({"lang": ["en", "de", "ja", "de"], "lang_score": [0.9, 0.9, 0.9, 0.2]})
    assert LanguageFilter()(table).reasons == [None, "lang:not_en", "lang:not_en", "lang:not_en"]
    top = LanguageFilter(languages=["en", "de", "fr"])(table).reasons
    assert top == [None, None, "lang:not_selected", "lang:low_score"]
    per = LanguageFilter(languages=["all"], thresholds={"de": 0.1})(table).reasons
    assert per == [None, None, None, None]


def test_missing_tokenizer_fails_unspaced_languages_and_spaced_ones_fall_back(monkeypatch):
    """Without jieba a Chinese page must not be counted by spaces: an environment error (the input fails and a
    rerun retries it), never a rejection; a German page may fall back to whitespace words."""
    import datatrove.utils.word_tokenizers as wt

    from filters.languages import load_language_tokenizer

    def missing(key):
        raise ImportError(f"Please install the tokenizer for {key}")

    monkeypatch.setattr(wt, "load_word_tokenizer", missing)
    with pytest.raises(ImportError, match="written without spaces"):
        load_language_tokenizer("zh")
    assert isinstance(load_language_tokenizer("de"), wt.WhitespaceTokenizer)


def test_environment_errors_inside_a_rule_fail_the_batch(pages, monkeypatch):
    import filters.heuristics as heuristics

    def broken(language):
        raise ImportError("No module named 'sudachipy'")

    rule = GopherQuality(name="gopher")
    monkeypatch.setattr(heuristics, "shared_word_tokenizer", broken)
    with pytest.raises(ImportError):
        rule(pages)


@pytest.mark.integration
def test_real_warcs_with_all_languages_are_judged_by_their_own_words(tmp_path):
    """The real WARCs (Chinese, Japanese, German, French... pages) with ``languages: [all]``: every CJK page that
    Gopher rejected as too short is short in its own words, and CJK pages that whitespace counting would have
    rejected as too short are judged by other, language-appropriate rules instead."""
    import logging

    import duckdb

    from filters.languages import load_language_tokenizer
    from pipelines.report.languages import language_counts
    from pipelines.sources.commoncrawl import without_models
    from pipelines.sources.registry import deep_merge
    from tests.helpers.paths import corpus_path
    from tests.helpers.sources import assert_accounting, run_source

    warcs = corpus_path("commoncrawl", "warc")
    override = deep_merge(
        without_models(),
        {
            "steps": {"lang_filter": {"languages": ["all"]}},
            "corpus_stages": {stage: {"enabled": False} for stage in ("minhash", "line_dedup", "url_dedup")},
        },
    )
    run_source("commoncrawl", warcs, str(tmp_path), override)
    assert_accounting(str(tmp_path), "commoncrawl")
    con = duckdb.connect()
    counts = language_counts(con, str(tmp_path), "commoncrawl", top_reasons=5)
    for row in counts:
        logging.getLogger(__name__).info("real WARCs, languages all: %s", row)
    langs = {r["lang"] for r in counts}
    assert {"en", "zh", "ja", "de", "fr"} <= langs, langs

    rejected = f"read_parquet('{tmp_path}/commoncrawl/rejected/*.parquet', union_by_name=true)"
    cjk = con.execute(f"SELECT id, lang, reason, text FROM {rejected} WHERE lang IN ('zh', 'ja')").fetchall()
    assert len(cjk) >= 10
    min_words = 50  # Gopher's min_doc_words (datatrove's default, unchanged in commoncrawl.yaml)
    by_spaces = GopherQuality(name="gopher", language_column=None)
    by_spaces.setup()
    rescued = 0
    for doc_id, lang, reason, text in cjk:
        own_words = [w for w in load_language_tokenizer(lang).word_tokenize(text) if w.strip()]
        if reason == "gopher:short_doc":
            assert len(own_words) < min_words, (doc_id, len(own_words))
        space_reason, _ = by_spaces.judge(doc_id, text)
        if space_reason == "gopher:short_doc" and reason != "gopher:short_doc":
            rescued += 1
    assert rescued >= 3, (
        rescued
    )  # pages whitespace words would have called too short, judged on their content
