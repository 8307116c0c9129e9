"""The topic taxonomy's labelling rules, the shipped fastText topic model, the TopicScore step, and retraining
from a user's ``__label__<topic> text`` file."""

from __future__ import annotations

import json
import os
import random

import pyarrow as pa
import pytest

from classifiers.steps import TopicScore
from classifiers.topic_train import TopicSettings, read_label_file, train_topics, wiki_articles
from classifiers.topics import TOPICS, label_url, label_wikipedia
from tests.helpers.cli import command
from tests.helpers.paths import corpus_path

winnow_models = command("models")

#: realistic web pages of topics the shipped model has most training text for
PAGES = {
    "science": (
        "Astronomers using the new telescope have measured the mass of a planet orbiting a nearby red dwarf star. "
        "The team combined radial velocity data with the light curve recorded as the planet passed in front of "
        "the star, and found a rocky world about twice the mass of the Earth. The researchers say the atmosphere "
        "could be studied with infrared spectroscopy, which would reveal whether water vapour, methane or carbon "
        "dioxide are present. The results were published in a physics journal after peer review, and the data "
        "are available to other scientists who want to test the model of the orbit and the stellar radiation."
    ),
    "arts_entertainment": (
        "The film opens in cinemas next week after its premiere at the festival, where the lead actress was "
        "nominated for an award. The director adapted the novel with the author, and the soundtrack was composed "
        "by a jazz musician whose album topped the charts last year. Critics praised the performances of the cast "
        "and the animation in the dream sequences, although some found the second act too long. The studio has "
        "announced a television series based on the same characters, with the original actors returning for "
        "the first season and a new song recorded for the opening credits."
    ),
    "geography_travel": (
        "The country lies on the coast of the Atlantic Ocean and borders three other countries to the north and "
        "east. Its capital is the largest city and the main port, and the interior is a plateau crossed by two "
        "great rivers that flow into the ocean. The climate is tropical along the coast and drier inland. The "
        "population is about twenty million, and the official language is Portuguese, while several Bantu "
        "languages are spoken in the provinces. The territory became independent in 1975 and is divided into "
        "eighteen provinces, with islands off the coast that attract visitors in the dry season."
    ),
    "politics_law": (
        "The appellate court reversed the judgment of the trial court and sent the case back for a new hearing. "
        "The defendant had been arraigned on criminal charges, and his lawyers argued that the prosecution had "
        "withheld evidence. The judges held that the procedure violated the constitution and the federal rules "
        "of criminal procedure. The government said it would appeal to the supreme court. Legal experts said "
        "the decision could change how prosecutors share evidence, and members of parliament have proposed a "
        "law that would make the rule explicit for all courts in the country."
    ),
}


def test_the_taxonomy_is_fixed_and_documented():
    assert 15 <= len(TOPICS) <= 25
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    for topic in TOPICS:
        assert f"`{topic}`" in readme, topic


def test_wikipedia_categories_and_urls_label_by_rule():
    # category lists as in the English dump
    assert (
        label_wikipedia(
            ["1970 births", "American male tennis players", "Australian Open (tennis) champions"],
            "Andre Agassi",
            "",
        )
        == "sports"
    )
    assert (
        label_wikipedia(
            ["Mammals of Africa", "Myrmecophagous mammals", "Articles containing video clips"], "Aardvark", ""
        )
        == "science"
    )
    assert (
        label_wikipedia(["Academy Awards", "American film awards"], "Academy Awards", "")
        == "arts_entertainment"
    )
    assert label_wikipedia(["Courts by type", "Appellate courts"], "Appellate court", "") == "politics_law"
    assert label_wikipedia([], "Austin (disambiguation)", "Austin may refer to a city") is None
    # no category matches: the title and lead vote
    assert label_wikipedia([], "Alkane", "In organic chemistry, an alkane is a hydrocarbon.") == "science"
    assert label_url("https://www.pcgamer.com/an-illusionist-in-skyrim-part-1/") == "games"
    assert label_url("https://example.org/sports/football/cup-final-report") == "sports"
    assert label_url("https://example.org/health/flu-vaccine-questions") == "health"
    assert label_url("https://example.org/recipes/lemon-tart") == "food_drink"
    assert label_url("https://example.org/about-us") is None


def test_the_shipped_model_gives_realistic_pages_their_topic():
    step = TopicScore()
    batch = pa.table({"id": [*PAGES, "empty"], "text": [*PAGES.values(), ""]})
    result = step(batch)
    assert result.reasons is None or not any(result.reasons)  # a score step never rejects
    out = result.table
    assert out.num_rows == batch.num_rows
    topics = out.column("topic").to_pylist()
    probs = out.column("topic_prob").to_pylist()
    assert topics[:-1] == list(PAGES)
    assert all(0 < p <= 1 for p in probs[:-1])
    assert topics[-1] is None and probs[-1] == 0.0  # nothing to classify: no guess


def test_the_shipped_model_records_its_held_out_quality():
    from classifiers.steps import DEFAULT_MODELS

    q = json.load(open(os.path.join(DEFAULT_MODELS, "topics", "quality.json"), encoding="utf-8"))
    h = q["heldout"]
    assert h["n"] >= 200 and 0 < h["accuracy"] <= 1 and 0 < h["macro_f1"] <= 1
    assert set(h["per_class"]) <= set(TOPICS)
    # the confusion matrix accounts for every held-out text
    assert sum(sum(row.values()) for row in h["confusion"].values()) == h["n"]
    assert q["meets_bar"] == (h["macro_f1"] >= q["bar_macro_f1"])
    assert q["heldout_documents"] and q["train_documents"] > len(q["heldout_documents"])


def _labelled_lines(rng: random.Random, n: int) -> list[str]:
    """Realistic short texts of three topics, built from varied vocabulary."""
    vocab = {
        "sports": (
            ["striker", "goalkeeper", "coach", "midfielder", "referee", "captain"],
            ["scored", "saved", "defended", "celebrated", "trained for"],
            ["the league match", "the cup final", "a penalty shootout", "the derby", "the championship game"],
        ),
        "food_drink": (
            ["chef", "baker", "sommelier", "home cook", "pastry chef"],
            ["roasted", "baked", "seasoned", "simmered", "paired"],
            [
                "the lamb with rosemary",
                "a sourdough loaf",
                "a tomato soup",
                "the red wine",
                "lemon tart with cream",
            ],
        ),
        "health": (
            ["doctor", "nurse", "patient", "surgeon", "pharmacist"],
            ["diagnosed", "treated", "vaccinated", "prescribed", "examined"],
            [
                "the infection",
                "chronic back pain",
                "high blood pressure",
                "the flu symptoms",
                "a broken wrist",
            ],
        ),
    }
    lines = []
    for i in range(n):
        topic = list(vocab)[i % 3]
        who, did, what = vocab[topic]
        words = [
            f"The {rng.choice(who)} {rng.choice(did)} {rng.choice(what)} and the {rng.choice(who)} "
            f"{rng.choice(did)} {rng.choice(what)}."
            for _ in range(rng.randint(2, 4))
        ]
        lines.append(f"__label__{topic} {' '.join(words)}")
    return lines


def test_a_user_label_file_retrains_the_model(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(_labelled_lines(random.Random(1), 240)) + "\n", encoding="utf-8")
    models = tmp_path / "models"
    assert winnow_models(["topics", "--labels", str(labels), "--models-dir", str(models)]) == 0
    q = json.load(open(models / "topics" / "quality.json", encoding="utf-8"))
    assert q["heldout"]["n"] == 60 and q["heldout"]["accuracy"] >= 0.95
    assert set(q["train_pieces_per_topic"]) == {"sports", "food_drink", "health"}
    step = TopicScore(model_path=str(models / "topics" / "model.ftz"))
    pages = {
        "sports": "The goalkeeper saved a penalty in the cup final and the captain scored in the derby.",
        "food_drink": "The baker seasoned a sourdough loaf and the chef paired the red wine with lamb.",
        "health": "The nurse examined the patient and the doctor prescribed treatment for the infection.",
    }
    out = step(pa.table({"id": list(pages), "text": list(pages.values())})).table
    assert out.column("topic").to_pylist() == list(pages)


def test_a_label_outside_the_taxonomy_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(
        "__label__sports The striker scored.\n__label__cats My cat sleeps all day.\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"bad.txt:2: .*arts_entertainment"):
        read_label_file(str(bad))
    assert winnow_models(["topics", "--labels", str(bad), "--models-dir", str(tmp_path / "m")]) == 2
    assert "__label__<topic>" in capsys.readouterr().err
    assert winnow_models(["topics", "--models-dir", str(tmp_path / "m")]) == 2


def test_categories_of_real_wikipedia_articles_label_them():
    dump = corpus_path("wikipedia", "enwiki-table-markup.xml.bz2")
    labels = {key.split("#", 1)[1]: topic for key, topic, _ in wiki_articles(dump)}
    assert labels == {
        "Constructive vote of no confidence": "politics_law",
        "List of Prison Break characters": "arts_entertainment",
        "Academy Award for Best Production Design": "arts_entertainment",
        "Economy of Estonia": "business_finance",
        "Brahui language": "society_culture",
    }


def test_train_topics_without_text_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="TOPIC_LABELS"):
        train_topics(TopicSettings(models_dir=str(tmp_path)))


def test_the_commoncrawl_recipe_scores_topics_before_the_quality_cascade():
    from pipelines.sources.commoncrawl import build_recipe
    from pipelines.sources.registry import load_config

    recipe = build_recipe(load_config("commoncrawl"))
    names = [s.name for s in recipe.steps]
    assert "topics" in names and names.index("topics") < names.index("perplexity")
    step = recipe.steps[names.index("topics")]
    assert isinstance(step, TopicScore) and step.kind == "score"
    schema = recipe.schema()
    assert schema.field("topic").type == pa.string() and schema.field("topic_prob").type == pa.float32()


def test_real_common_crawl_text_gets_topics_from_the_taxonomy():
    path = corpus_path("commoncrawl", "text", "allenai--dolma", "cc_en_head-0091.jsonl")
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    out = TopicScore()(pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})).table
    topics = out.column("topic").to_pylist()
    assert set(topics) <= set(TOPICS) and len(set(topics)) >= 3
    assert all(0 < p <= 1 for p in out.column("topic_prob").to_pylist())
