"""``winnow models topics``: label the user's corpora with the rules of :mod:`classifiers.topics`, train the
fastText topic classifier, and measure it on held-out documents it never saw.

Readers: MediaWiki dumps (categories + lead), WARC files, raw HTML and CCNet JSONL (labelled by URL), Gutenberg
books and arXiv LaTeX (one topic per source), and a user label file (``__label__<topic> text`` per line, fastText's
own format).  The split is by document, as for the quality models (:func:`classifiers.dataset.is_heldout`): every
chunk of a held-out article or page is held out.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from classifiers.corpora import _WIKI_LANG, _open_text, arxiv_docs, book_docs, wikitext_to_text
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
    """(key, topic, text) per labelled article of a MediaWiki dump (namespace 0, no redirects) in ``lang``."""
    out: list[tuple[str, str, str]] = []
    with _open_text(path) as f:
        m = _WIKI_LANG.search(f.read(2000))
    if (m.group(1) if m else "en") != lang:
        log.info("topics: %s is not a %s wiki, skipped", path, lang)
        return out
    with _open_text(path) as f:
        for _, elem in ET.iterparse(f, events=("end",)):
            if not elem.tag.endswith("page"):
                continue
            title = next((c.text or "" for c in elem if c.tag.endswith("title")), "")
            ns = next((c.text for c in elem if c.tag.endswith("ns")), "0")
            body = ""
            for rev in (c for c in elem if c.tag.endswith("revision")):
                body = next((c.text or "" for c in rev if c.tag.endswith("text")), body)
            elem.clear()
            if ns != "0" or body.lstrip().lower().startswith("#redirect"):
                continue
            text = wikitext_to_text(body)
            topic = label_wikipedia([c.strip() for c in _CATEGORY.findall(body)], title, text[:1000])
            if topic and len(text) >= 300:
                out.append((f"{os.path.basename(path)}#{title}", topic, text))
    return out


#: tags a meta site (the site's own Q&A about itself) uses most; such a dump is not about any topic
META_TAGS = frozenset({"discussion", "feature-request", "support", "bug", "status-completed", "tags"})


def stackexchange_threads(path: str, max_per_topic: int) -> list[tuple[str, str, str]]:
    """(key, topic, text) per question thread (question and answers) of a StackExchange ``Posts.xml``, labelled
    by its tags; a meta site's dump is skipped, and at most ``max_per_topic`` threads per topic are kept (the
    first by id) so that one site does not swamp the others."""
    from classifiers.corpora import strip_html

    questions: dict[str, tuple[list[str], list[str]]] = {}
    answers: dict[str, list[str]] = {}
    for _, elem in ET.iterparse(path, events=("end",)):
        if elem.tag != "row":
            continue
        a = elem.attrib
        if a.get("PostTypeId") == "1":
            tags = re.findall(r"<([^>]+)>", a.get("Tags", "")) or a.get("Tags", "").strip("|").split("|")
            questions[a["Id"]] = ([t for t in tags if t], [a.get("Title", ""), strip_html(a.get("Body", ""))])
        elif a.get("PostTypeId") == "2" and a.get("ParentId"):
            answers.setdefault(a["ParentId"], []).append(strip_html(a.get("Body", "")))
        elem.clear()
    counts = Counter(t for tags, _ in questions.values() for t in tags)
    if counts and counts.most_common(1)[0][0] in META_TAGS:
        log.info("topics: %s is a meta site (most common tag %r), skipped", path, counts.most_common(1)[0][0])
        return []
    out: list[tuple[str, str, str]] = []
    per: Counter[str] = Counter()
    for qid in sorted(questions, key=lambda q: int(q) if q.isdigit() else 0):
        tags, parts = questions[qid]
        topic = topic_from_names([t.replace("-", " ") for t in tags])
        text = "\n\n".join(parts + answers.get(qid, []))
        if topic and len(text) >= 300 and per[topic] < max_per_topic:
            per[topic] += 1
            out.append((f"{os.path.basename(os.path.dirname(path))}#{qid}", topic, text))
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
        pages = _warc_pages(path)
    return [(u, t, text) for u, text in pages if len(text) >= 200 and (t := label_url(u))]


def _warc_pages(path: str) -> list[tuple[str, str]]:
    import pyarrow as pa

    from filters.extract import ExtractText
    from pipelines.readers.warc import WarcReader

    rows = [r for r in WarcReader().read(path) if isinstance(r, dict) and not r.get("reason")]
    if not rows:
        return []
    table = pa.table(
        {"text": [r.get("text") or "" for r in rows], "content_format": [r["content_format"] for r in rows]}
    )
    result = ExtractText(timeout_s=120.0)(table)
    texts = result.table.column("text").to_pylist()
    return [
        (r.get("url") or "", t or "")
        for r, t, why in zip(rows, texts, result.reasons or [None] * len(rows), strict=True)
        if why is None
    ]


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
    with _open_text(path) as f:
        return "<mediawiki" in f.read(2000)


def corpus_pieces(
    folder: str, max_chunks: int, max_per_host: int = 3, lang: str = "en", max_per_topic: int = 40
) -> list[Labelled]:
    """Labelled pieces of every readable file under ``folder``."""
    pieces: list[Labelled] = []
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
                docs = [(rel, SOURCE_TOPICS["books"], "\n\n".join(d.text for d in book_docs(path)), "books")]
            elif name.endswith(".tex"):
                paper = rel.split(os.sep)[0]
                docs = [
                    (paper, SOURCE_TOPICS["arxiv"], "\n\n".join(d.text for d in arxiv_docs(path)), "arxiv")
                ]
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
    """fastText supervised on the training pieces (one thread: the same model for the same seed)."""
    import fasttext

    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    lines = [(p.topic, preprocess(p.text).split()) for p in train]
    counts = Counter(w for _, words in lines for w in words)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for topic, words in lines:
            # a line none of whose words reaches minCount has no input: fastText's loss becomes NaN
            if any(counts[w] >= 2 for w in words):
                f.write(f"{LABEL_PREFIX}{topic} {' '.join(words)}\n")
        name = f.name
    try:
        model = fasttext.train_supervised(
            input=name,
            epoch=s.epoch,
            dim=s.dim,
            lr=s.lr,
            wordNgrams=s.word_ngrams,
            minCount=2,
            thread=1,
            seed=s.seed,
            verbose=0,
        )
        if s.quantize:
            model.quantize(input=name, qnorm=True, retrain=True, cutoff=50_000, thread=1, verbose=0)
    finally:
        os.unlink(name)
    model.save_model(out_path)


def train_topics(s: TopicSettings) -> dict[str, Any]:
    """Label, split, train, measure; writes ``model.ftz`` and ``quality.json`` into ``<models_dir>/topics``."""
    from classifiers.topics import predict_topics
    from filters import langid

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
    langid._MODELS.pop(path, None)  # a retrained file must not be served from the per-process cache
    pred, _ = predict_topics(langid.load_fasttext(path), [p.text for p in held])
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
