"""``winnow models topics``: label the user's corpora with the rules of :mod:`classifiers.topics`, train the
fastText topic classifier, and measure it on held-out documents it never saw.

Readers: MediaWiki dumps (categories + lead), WARC files, raw HTML and CCNet JSONL (labelled by URL), Gutenberg
books and arXiv LaTeX (one topic per source), and a user label file (``__label__<topic> text`` per line, fastText's
own format).  The split is by document, as for the quality models (:func:`classifiers.dataset.is_heldout`): every
chunk of a held-out article or page is held out.
"""

from __future__ import annotations

import bz2
import json
import logging
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from classifiers import corpora
from classifiers.dataset import SPLIT_RULE, _files, chunk_text, is_heldout
from classifiers.topics import (
    LABEL_PREFIX,
    SOURCE_TOPICS,
    TOPICS,
    label_url,
    label_wikipedia,
    metrics,
    preprocess,
    topic_from_names,
)

log = logging.getLogger(__name__)

#: held-out macro-F1 below which the topic model is flagged (the step still scores; mixtures still steer, warned)
BAR_MACRO_F1 = 0.5

_CATEGORY = re.compile(r"\[\[\s*Category\s*:\s*([^\]|]+)", re.I)
_CANONICAL = re.compile(r"""<link[^>]+rel=["']canonical["'][^>]+href=["']([^"']+)""", re.I)
_OG_URL = re.compile(r"""<meta[^>]+property=["']og:url["'][^>]+content=["']([^"']+)""", re.I)


@dataclass
class Labelled:
    """A chunk of a document with its topic; ``key`` names the document (the unit of the split)."""

    text: str
    key: str
    kind: str
    topic: str


@dataclass
class TopicSettings:
    models_dir: str = "models"
    #: folders (or files) of text to label by rule: wiki dumps, WARC/HTML/JSONL pages, books, arXiv
    corpus: list[str] = field(default_factory=list)
    #: the user's own labelled file: ``__label__<topic> text`` per line
    labels: str | None = None
    seed: int = 0
    #: a long article or book gives at most this many ~2,000-character chunks (training and held out)
    max_chunks_per_doc: int = 12
    #: pages per web host at most (a site crawled deeply must not stand for its whole topic)
    max_pages_per_host: int = 3
    #: question threads per topic at most from one StackExchange dump
    max_threads_per_topic: int = 40
    #: the language of the model: dumps of other wikis are not read
    lang: str = "en"
    epoch: int = 50
    dim: int = 32
    lr: float = 0.5
    word_ngrams: int = 2
    quantize: bool = True


def wiki_articles(path: str, lang: str = "en") -> list[tuple[str, str, str]]:
    """(key, topic, text) per labelled article of a MediaWiki dump in ``lang`` (read by the Wikipedia reader:
    namespace 0, no redirects or disambiguation pages), labelled by its categories."""
    out: list[tuple[str, str, str]] = []
    for row in corpora.wiki_pages(path, languages=[lang]):
        text, title = row["text"], row["title"]
        topic = label_wikipedia([c.strip() for c in _CATEGORY.findall(row["wikitext"])], title, text[:1000])
        if topic and len(text) >= 300:
            out.append((f"{os.path.basename(path)}#{title}", topic, text))
    return out


#: tags a meta site (the site's own Q&A about itself) uses most; such a dump is not about any topic
META_TAGS = frozenset({"discussion", "feature-request", "support", "bug", "status-completed", "tags"})


def stackexchange_threads(path: str, max_per_topic: int) -> list[tuple[str, str, str]]:
    """(key, topic, text) per question thread of a StackExchange ``Posts.xml`` (read by the StackExchange reader),
    labelled by its tags; a meta site's dump is skipped, and at most ``max_per_topic`` threads per topic are kept
    (the first by id) so that one site does not swamp the others."""
    threads = sorted(corpora.stackexchange_threads(path), key=lambda r: r["meta"]["question_id"])
    counts = Counter(t for r in threads for t in r["meta"]["tags"])
    if counts and counts.most_common(1)[0][0] in META_TAGS:
        log.info("topics: %s is a meta site (most common tag %r), skipped", path, counts.most_common(1)[0][0])
        return []
    out: list[tuple[str, str, str]] = []
    per: Counter[str] = Counter()
    for r in threads:
        topic = topic_from_names([t.replace("-", " ") for t in r["meta"]["tags"]])
        if topic and len(r["text"]) >= 300 and per[topic] < max_per_topic:
            per[topic] += 1
            out.append(
                (f"{os.path.basename(os.path.dirname(path))}#{r['meta']['question_id']}", topic, r["text"])
            )
    return out


def web_pages(path: str) -> list[tuple[str, str, str]]:
    """(url, topic, text) per web page whose URL a rule labels."""
    name = os.path.basename(path)
    pages: list[tuple[str, str]] = []
    if name.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line) if line.strip() else {}
                url = row.get("url") or row.get("id") or ""
                if row.get("text") and "://" in url:
                    pages.append((url, row["text"]))
    elif name.endswith(".html"):
        import trafilatura

        raw = open(path, encoding="utf-8", errors="replace").read()
        m = _CANONICAL.search(raw) or _OG_URL.search(raw)
        url = m.group(1) if m else name.removesuffix(".html")  # the saved name is host.slug
        text = trafilatura.extract(raw, favor_precision=True) or ""
        pages.append((url, text))
    else:
        pages = corpora.warc_pages(path)
    return [(u, t, text) for u, text in pages if len(text) >= 200 and (t := label_url(u))]


def per_host(pages: list[tuple[str, str, str]], cap: int) -> list[tuple[str, str, str]]:
    """At most ``cap`` pages of each host, the first by URL (the choice does not depend on file order)."""
    seen: Counter[str] = Counter()
    out = []
    for url, topic, text in sorted(pages):
        host = urllib.parse.urlsplit(url if "://" in url else "http://" + url).hostname or url
        seen[host] += 1
        if seen[host] <= cap:
            out.append((url, topic, text))
    return out


def _is_wiki(path: str) -> bool:
    """A MediaWiki dump (its first bytes name the export schema); other XML (StackExchange tables) is not read."""
    if not path.endswith((".xml", ".bz2")):
        return False
    opener = bz2.open if path.endswith(".bz2") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return "<mediawiki" in f.read(2000)


def corpus_pieces(
    folder: str, max_chunks: int, max_per_host: int = 3, lang: str = "en", max_per_topic: int = 40
) -> list[Labelled]:
    """Labelled pieces of every readable file under ``folder``."""
    pieces: list[Labelled] = []
    papers: set[str] = set()  # arXiv papers read (the reader reads a paper's folder whole)
    base = folder if os.path.isdir(folder) else os.path.dirname(folder)
    for path in _files(folder):
        name, rel = os.path.basename(path), os.path.relpath(path, base)
        try:
            if name == "Posts.xml":
                docs = [(k, t, x, "stackexchange") for k, t, x in stackexchange_threads(path, max_per_topic)]
            elif _is_wiki(path):
                docs = [(k, t, x, "wikipedia") for k, t, x in wiki_articles(path, lang)]
            elif name.endswith((".warc.gz", ".warc", ".html", ".jsonl")):
                docs = [(u, t, x, "web") for u, t, x in per_host(web_pages(path), max_per_host)]
            elif name.endswith(".txt"):
                text = "\n\n".join(d.text for d in corpora.book_docs(path))
                docs = [(rel, SOURCE_TOPICS["books"], text, "books")]
            elif name.endswith(".tex"):
                paper = rel.split(os.sep)[0]
                if paper in papers:
                    continue
                papers.add(paper)
                text = "\n\n".join(d.text for d in corpora.arxiv_docs(os.path.join(base, paper)))
                docs = [(paper, SOURCE_TOPICS["arxiv"], text, "arxiv")]
            else:
                continue
        except (OSError, ValueError, SyntaxError, ET.ParseError) as exc:  # a broken file is reported, skipped
            log.warning("skipping %s: %s", path, exc)
            continue
        for key, topic, text, kind in docs:
            chunks = chunk_text(text)
            step = max(1, len(chunks) // max_chunks)
            pieces += [Labelled(c, key, kind, topic) for c in chunks[::step][:max_chunks] if c.strip()]
    return pieces


def read_label_file(path: str) -> list[Labelled]:
    """The user's ``__label__<topic> text`` lines; an unknown topic stops with the list of known ones."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, _, text = line.strip().partition(" ")
            topic = label.removeprefix(LABEL_PREFIX)
            if not label.startswith(LABEL_PREFIX) or topic not in TOPICS:
                raise ValueError(
                    f"{path}:{n}: expected `__label__<topic> text` with a topic of {', '.join(TOPICS)}; "
                    f"got {label[:60]!r}"
                )
            out.append(Labelled(text, f"{os.path.basename(path)}#{n}", "labels", topic))
    return out


def split_by_document(pieces: list[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    """(train, held out): within each kind, every 4th document by the hash of its key (all its chunks)."""
    held: set[tuple[str, str]] = set()
    for kind in sorted({p.kind for p in pieces}):
        held |= {(kind, k) for k in is_heldout([p.key for p in pieces if p.kind == kind])}
    return (
        [p for p in pieces if (p.kind, p.key) not in held],
        [p for p in pieces if (p.kind, p.key) in held],
    )


def train_fasttext_topics(train: list[Labelled], out_path: str, s: TopicSettings) -> None:
    """fastText supervised on the training pieces (:func:`classifiers.fasttext_train.fit_fasttext`)."""
    from classifiers.fasttext_train import fit_fasttext

    lines = [(p.topic, preprocess(p.text).split()) for p in train]
    counts = Counter(w for _, words in lines for w in words)
    fit_fasttext(
        # a line none of whose words reaches minCount has no input: fastText's loss becomes NaN
        (
            f"{LABEL_PREFIX}{topic} {' '.join(words)}\n"
            for topic, words in lines
            if any(counts[w] >= 2 for w in words)
        ),
        out_path,
        cutoff=50_000,
        quantize=s.quantize,
        epoch=s.epoch,
        dim=s.dim,
        lr=s.lr,
        wordNgrams=s.word_ngrams,
        minCount=2,
        seed=s.seed,
    )


def train_topics(s: TopicSettings) -> dict[str, Any]:
    """Label, split, train, measure; writes ``model.ftz`` and ``quality.json`` into ``<models_dir>/topics``."""
    from classifiers.fasttext_train import load_retrained
    from classifiers.topics import predict_topics

    pieces = [
        p
        for folder in s.corpus
        for p in corpus_pieces(
            folder, s.max_chunks_per_doc, s.max_pages_per_host, s.lang, s.max_threads_per_topic
        )
    ]
    pieces += read_label_file(s.labels) if s.labels else []
    if not pieces:
        raise FileNotFoundError(
            "nothing to train the topic classifier on: give CORPUS=<folders of wiki dumps/web pages/books> "
            "or TOPIC_LABELS=<file of `__label__<topic> text` lines>"
        )
    train, held = split_by_document(pieces)
    out = os.path.join(s.models_dir, "topics")
    path = os.path.join(out, "model.ftz")
    train_fasttext_topics(train, path, s)
    pred, _ = predict_topics(load_retrained(path), [p.text for p in held])
    heldout = metrics([p.topic for p in held], [t or "" for t in pred])
    record = {
        "model": "topics",
        "heldout": heldout,
        "bar_macro_f1": BAR_MACRO_F1,
        "meets_bar": bool(heldout["macro_f1"] >= BAR_MACRO_F1),
        "split_rule": SPLIT_RULE.replace(
            "per kind (wikipedia, books, arxiv, web, jsonl, parquet) and language",
            "per kind (wikipedia, web, stackexchange, books, arxiv, labels)",
        ),
        "train_pieces": len(train),
        "train_documents": len({(p.kind, p.key) for p in train}),
        "heldout_documents": sorted({f"{p.kind}:{p.key}" for p in held}),
        "train_pieces_per_topic": dict(Counter(p.topic for p in train).most_common()),
        "topics_without_training_text": [t for t in TOPICS if t not in {p.topic for p in train}],
        "settings": asdict(s)
        | {
            "corpus": [os.path.basename(os.path.normpath(c)) for c in s.corpus],
            "labels": os.path.basename(s.labels) if s.labels else None,
        },
        "files": {"model.ftz": os.path.getsize(path)},
    }
    with open(os.path.join(out, "quality.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    return record
