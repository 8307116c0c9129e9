"""The topic taxonomy, the rules that label training text with it, and the fastText topic classifier.

LLaMA-3 classified its web data by "the types of information" it holds to down-sample topics the web over-represents
(arts and entertainment).  Winnow's taxonomy is fixed (:data:`TOPICS`, the README's table) so that mixtures, reports
and user label files all name the same classes.  Labels for training come from rules anyone can read and rerun:

* a Wikipedia article votes with its ``[[Category:...]]`` names (each category name gives one vote to the first topic
  whose keywords it contains, ``topic_rules.yaml``); the most votes win, ties go to the topic listed first; an article
  without a matching category falls back to the words of its title and lead;
* a web page is labelled by its URL, as DMOZ filed sites: a directory of hosts (``topic_rules.yaml``), then the keywords in
  the host name and path segments (``/sports/``, ``/health/``, ``rezepte``...); pages no rule names are not used;
* whole sources with one subject: Project Gutenberg books are literature (``arts_entertainment``), arXiv papers
  ``science``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections import Counter
from functools import lru_cache

import numpy as np
import yaml

#: topic id -> what it covers (the README table); the ids are the ``topic`` column values and mixture keys
TOPICS: dict[str, str] = {
    "arts_entertainment": "film, television, music, literature and books, visual arts, celebrities, awards",
    "business_finance": "companies, markets, economy, money, investing, jobs, marketing",
    "technology": "computing, software, programming, the internet, electronics, gadgets, engineering",
    "science": "natural sciences, mathematics, statistics, astronomy and space, nature and animals, research",
    "health": "medicine, diseases and disorders, fitness, nutrition, mental health, anatomy",
    "politics_law": "government, politics, parties, elections, law, courts, crime, the military, public affairs",
    "education": "schools, universities, teaching, learning, students, academia",
    "history": "past events and periods, wars, revolutions, ancient civilisations, historical people",
    "geography_travel": "countries, cities, regions, landforms, tourism, hotels, trips",
    "sports": "sports, teams, athletes, competitions, martial arts, outdoor sport",
    "religion_philosophy": "religions, mythology, spirituality, philosophy, ethics, logic",
    "food_drink": "cooking, recipes, restaurants, wine and beverages, agriculture as food",
    "home_lifestyle": "fashion, beauty, wellness, family, relationships, home and garden, pets, hobbies",
    "games": "video games, board and card games, puzzles, gaming culture",
    "shopping": "products, shops, deals, reviews of things to buy, e-commerce listings",
    "society_culture": "languages and writing systems, peoples and demographics, social issues, customs, media",
    "adult": "sexual and pornographic content",
}

#: the labelling rules: keyword stems per topic (priority order) and a directory of hosts, in topic_rules.yaml
RULES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topic_rules.yaml")


@lru_cache(maxsize=1)
def rules() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """``(keywords, hosts)``: read once, on first use (no work at import time)."""
    with open(RULES_PATH, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {k: tuple(v) for k, v in data["keywords"].items()}, dict(data["hosts"])


#: sources whose every document has one subject
SOURCE_TOPICS: dict[str, str] = {"books": "arts_entertainment", "arxiv": "science"}

LABEL_PREFIX = "__label__"
_WORDS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)


#: Wikipedia's maintenance categories say nothing about the article's subject
_MAINTENANCE = re.compile(r"^(articles|pages|wikipedia|requests|use |cs1|webarchive|all |commons)", re.I)


def _first_topic(name: str) -> str | None:
    low = name.lower()
    if _MAINTENANCE.match(low) or "academy award" in low:
        return "arts_entertainment" if "academy award" in low else None
    for topic, words in rules()[0].items():
        for w in words:
            # a stem matches at a word start ("art" matches "arts", not "martial" or "cart")
            if re.search(r"(?<![a-zäöüß])" + re.escape(w), low):
                return topic
    return None


def topic_from_names(names: list[str]) -> str | None:
    """Each name votes for its first matching topic; most votes win, ties go to the topic listed first."""
    votes = Counter(t for t in (_first_topic(n) for n in names) if t)
    if not votes:
        return None
    order = list(rules()[0])
    return max(votes, key=lambda t: (votes[t], -order.index(t)))


def label_wikipedia(categories: list[str], title: str, lead: str) -> str | None:
    """The topic of an article: its categories vote; without a matching one, its title and lead's words do.
    Disambiguation pages list unrelated subjects: they get no label."""
    if "disambiguation" in title.lower() or any("disambiguation" in c.lower() for c in categories):
        return None
    return topic_from_names(categories) or topic_from_names([title] + _sentences(lead)[:2])


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def label_url(url: str) -> str | None:
    """The topic a URL's host (the directory in ``topic_rules.yaml``) or its host and path words name, or None."""
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    path = parts.path.lower()
    for known, topic in rules()[1].items():
        h, _, p = known.partition("/")
        if (host == h or host.endswith("." + h) or host.startswith(h + ".")) and path.startswith("/" + p):
            return topic
    segments = [s for s in re.split(r"[/._\-]+", f"{host}/{path}") if s and not s.isdigit()]
    return topic_from_names(segments)


def preprocess(text: str, max_chars: int = 20_000) -> str:
    """fastText input: words only, lower case, one line (so punctuation and numbers carry no topic)."""
    return " ".join(_WORDS.findall(text[:max_chars].lower()))


def predict_topics(model: object, texts: list[str]) -> tuple[list[str | None], np.ndarray]:
    """(topic, probability) per text; an empty text gets (None, 0.0) rather than a guess."""
    probs = np.zeros(len(texts), dtype=np.float32)
    topics: list[str | None] = [None] * len(texts)
    clean = [preprocess(t or "") for t in texts]
    todo = [i for i, c in enumerate(clean) if c]
    if todo:
        labels, p = model.predict([clean[i] for i in todo], k=1)  # type: ignore[attr-defined]
        for i, lab, pr in zip(todo, labels, p, strict=True):
            topics[i] = lab[0].removeprefix(LABEL_PREFIX)
            probs[i] = min(1.0, float(pr[0]))
    return topics, probs


def metrics(truth: list[str], pred: list[str]) -> dict[str, object]:
    """Accuracy, macro-F1 over the classes present in ``truth``, per-class precision/recall, confusion matrix."""
    classes = [t for t in TOPICS if t in set(truth) | set(pred)]
    per: dict[str, dict[str, float]] = {}
    for c in classes:
        tp = sum(1 for t, p in zip(truth, pred, strict=True) if t == c and p == c)
        n_pred, n_true = pred.count(c), truth.count(c)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_true if n_true else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4), "support": n_true}
    present = [c for c in classes if per[c]["support"]]
    confusion = {
        t: {
            p: n
            for p in classes
            if (n := sum(1 for a, b in zip(truth, pred, strict=True) if (a, b) == (t, p)))
        }
        for t in present
    }
    return {
        "n": len(truth),
        "accuracy": round(float(np.mean([t == p for t, p in zip(truth, pred, strict=True)])), 4)
        if truth
        else 0.0,
        "macro_f1": round(float(np.mean([per[c]["f1"] for c in present])), 4) if present else 0.0,
        "per_class": per,
        "confusion": confusion,
    }
