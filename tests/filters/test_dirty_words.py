"""Dirty-word counting (filters/dirty_words.py): shares of listed words per language, phrases, unspaced scripts,
languages without a list, and the recipe's dirty_filter rejection with dirty_frac kept on the rejected row."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dirty_words import DirtyWords, read_lists
from pipelines.runner import run_recipe
from tests.helpers.ops_hostile import _warc
from tests.pipelines.sources.test_commoncrawl import recipe

ARTICLE = (
    "The river rose again on Tuesday night, and by morning the water had reached the steps of the old mill. "
    "Town councillors met at noon to discuss the flood defences that were built after the storm of 2013."
)
SEX_ED = (
    "Health classes in secondary schools now cover puberty, consent and sexual health. Teachers say that pupils "
    "ask practical questions about relationships, contraception and how to find reliable advice online. "
    "Parents were invited to an evening session where the school nurse explained the new curriculum, which "
    "also covers friendship, online safety and how bodies change during adolescence; sex education is one "
    "unit among twelve in the programme, taught over two weeks in the spring term."
)


def _fractions(texts: list[str], langs: list[str | None]) -> list[float | None]:
    return DirtyWords()(pa.table({"text": texts, "lang": langs})).table.column("dirty_frac").to_pylist()


def test_shares_of_listed_words_per_language():
    en = read_lists(os.path.join(os.path.dirname(__file__), "..", "..", "filters", "wordlists", "ldnoobw"))["en"]
    spam_words = sorted(e for e in en if " " not in e)[:12]
    spam = " ".join(spam_words + ["free", "videos", "tonight"])
    fr = _fractions([ARTICLE, SEX_ED, spam, ""], ["en", "en", "en", "en"])
    assert fr[0] == 0.0 and fr[3] == 0.0
    assert 0 < fr[1] < 0.03  # one listed word in a long sex-education text: kept by the default cut
    assert fr[2] == pytest.approx(12 / 15)


def test_phrases_count_their_words_once_and_whole_words_only():
    (two_girls,) = _fractions(["they watched 2 girls 1 cup and felt ill"], ["en"])
    assert two_girls == pytest.approx(4 / 9)
    (inside,) = _fractions(["Sussex and Essex assessed the classic assassin film"], ["en"])
    assert inside == 0.0  # listed words inside longer words do not count


def test_unspaced_scripts_count_characters_and_unlisted_languages_get_null():
    zh, ja, latgalian, missing = _fractions(["三级片在线观看", "日本の川はとても美しいです", "Upis ir daudz", "x"],
                                            ["zh", "ja", "ltg", None])
    assert zh == pytest.approx(3 / 7)
    assert ja == 0.0
    assert latgalian is None
    assert missing == 0.0  # no lang: the default language (en)


def test_user_lists_add_a_language(tmp_path):
    (tmp_path / "ltg.txt").write_text("nalobs vuords\n")
    step = DirtyWords(lists_dir=str(tmp_path))
    (v,) = step(pa.table({"text": ["tys ir nalobs vuords"], "lang": ["ltg"]})).table.column("dirty_frac").to_pylist()
    assert v == pytest.approx(2 / 4)


def test_the_recipe_rejects_a_page_full_of_listed_words(tmp_path):
    en = read_lists(os.path.join(os.path.dirname(__file__), "..", "..", "filters", "wordlists", "ldnoobw"))["en"]
    words = sorted(e for e in en if " " not in e)
    paragraphs = "".join(
        f"<p>Watch the best {words[i]} and {words[i + 1]} videos of the week, updated every single day for members "
        f"who like {words[i + 2]} content, with new galleries from our partners in every country.</p>"
        for i in range(0, 60, 3)
    )
    page = f"<html><head><title>Videos</title></head><body><article>{paragraphs}</article></body></html>".encode()
    warc = tmp_path / "dirty.warc.gz"
    warc.write_bytes(_warc([("dirty", page)], urn="dirty", urls={"dirty": "https://videos.example.com/week"}))
    out = str(tmp_path / "out")
    # the page repeats a template, which the repetition rules would catch first: they are off here
    heuristics_off = {"steps": {n: {"enabled": False} for n in ("gopher_rep", "gopher", "c4", "fineweb")}}
    run_recipe(recipe(**heuristics_off), str(warc), out, executor="local", progress=False)
    (row,) = pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()
    assert (row["rejected_by"], row["reason"]) == ("dirty_filter", "dirty_filter:above_max")
    assert row["dirty_frac"] > 0.03 and row["lang"] == "en"
