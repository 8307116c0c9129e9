"""``winnow models train`` / ``make models``: train KenLM, the fastText wiki-reference and the RoBERTa classifier
from the user's reference text and web sample (or a label file), and measure each on held-out documents.

Nothing is read unless named: no default corpus, no fallback to test fixtures.  The split is by document
(:mod:`classifiers.dataset`); each model's ``quality.json`` records its held-out AUC, the bar, whether it meets it,
the split rule and the held-out document keys, and the settings, so the filter gate and the tests can read them.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from classifiers.dataset import SPLIT_RULE, Piece, chunk_text, load_labelled, split
from classifiers.evaluate import eval_set, measure, model_location, write_quality

log = logging.getLogger(__name__)

#: semantic: the default encoder of the semantic dedup stage (classifiers/train_embeddings.py)
MODELS = ("kenlm", "wikiref", "roberta", "semantic")


@dataclass
class TrainSettings:
    models_dir: str = "models"
    #: folders (or files) of reference-quality text: Wikipedia dump XML, Gutenberg .txt, arXiv .tex, JSONL/Parquet
    reference: list[str] = field(default_factory=list)
    #: folders of web pages: WARC, HTML, JSONL/Parquet with a ``text`` column
    web: list[str] = field(default_factory=list)
    #: JSONL (text, label) from a larger model (as LLaMA-3): added to the training text of both classifiers
    labels: str | None = None
    lang: str = "en"
    seed: int = 0
    kenlm_order: int = 5
    #: lmplz --prune: drop singleton 3-, 4- and 5-grams
    kenlm_prune: list[int] = field(default_factory=lambda: [0, 0, 1])
    kenlm_quantize_bits: int = 8
    sp_vocab: int = 8000
    ppl_percentiles: tuple[float, float] = (30.0, 60.0)
    roberta_layers: int = 2
    roberta_hidden: int = 128
    roberta_vocab: int = 4000
    roberta_epochs: int = 3
    roberta_max_length: int = 128
    #: examples per class at most (a seeded sample): keeps training to minutes on a small CPU
    roberta_max_per_class: int = 1000
    #: local HF checkpoint to fine-tune instead of training from scratch
    roberta_init: str | None = None
    only: list[str] = field(default_factory=lambda: list(MODELS))


def label_pieces(path: str, lang: str) -> list[Piece]:
    from classifiers.roberta import read_label_file

    texts, labels = read_label_file(path)
    name = os.path.basename(path)
    return [
        Piece(t, f"{name}#{i}", "labels", y, lang) for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]


def load_training_text(s: TrainSettings) -> list[Piece]:
    """The labelled pieces in the model language; fails with what to give when there is nothing to train on."""
    if not s.reference and not s.web and not s.labels:
        raise FileNotFoundError(
            "nothing to train on: give REFERENCE=<folder of reference text> and WEB=<folder of web pages> "
            "(and optionally LABELS=<JSONL text,label>); the shipped models in classifiers/default_models are "
            "used when you train nothing"
        )
    pieces = load_labelled(s.reference, s.web) + (label_pieces(s.labels, s.lang) if s.labels else [])
    pieces = [p for p in pieces if p.lang == s.lang]
    n_ref, n_web = sum(p.label for p in pieces), sum(1 - p.label for p in pieces)
    if n_ref < 20 or n_web < 10:
        raise ValueError(
            f"too little {s.lang} training text: {n_ref} reference pieces and {n_web} web pages found under "
            f"reference={s.reference} web={s.web} labels={s.labels}; need at least 20 and 10"
        )
    return pieces


def classifier_examples(
    train: list[Piece], seed: int, max_per_class: int | None = None
) -> list[tuple[str, int]]:
    """Reference chunks and web pages cut to the same chunk size (at most ``max_per_class`` of each, a seeded
    sample); the smaller class repeated to balance."""
    rng = random.Random(seed)
    pos = [(p.text, 1) for p in train if p.label == 1]
    neg = [(c, 0) for p in train if p.label == 0 for c in chunk_text(p.text)]
    if max_per_class:
        pos, neg = (rng.sample(x, min(len(x), max_per_class)) for x in (pos, neg))
    small, large = sorted((pos, neg), key=len)
    small = small * max(1, round(len(large) / max(1, len(small))))
    rows = small + large
    rng.shuffle(rows)
    return rows


def train_all(s: TrainSettings) -> dict[str, Any]:
    """Train every model in ``s.only``; returns {model: quality record}."""
    pieces = load_training_text(s)
    train, held = split(pieces)
    texts, y = eval_set(held, s.lang)
    heldout_keys = sorted({f"{p.kind}:{p.key}" for p in held})
    log.info(
        "%d training pieces, held out %d documents (%d texts)", len(train), len(heldout_keys), len(texts)
    )
    common = {
        "split_rule": SPLIT_RULE,
        "heldout_documents": heldout_keys,
        "train_pieces": len(train),
        "train_documents": len({(p.kind, p.key) for p in train}),
        # folders by name only: where the text lay on the training machine is no part of the model
        "settings": {k: v for k, v in asdict(s).items() if k not in ("only",)}
        | {k: [os.path.basename(os.path.normpath(f)) for f in getattr(s, k)] for k in ("reference", "web")}
        | {"labels": os.path.basename(s.labels) if s.labels else None},
    }
    reports: dict[str, Any] = {}
    for name in s.only:
        out = os.path.join(s.models_dir, name)
        shutil.rmtree(out, ignore_errors=True)  # a retrain never leaves a stale file of the previous one
        os.makedirs(out, exist_ok=True)
        if name == "semantic":  # measured on reworded pairs, not on reference vs web
            from classifiers.train_embeddings import train_semantic

            metrics, extra = train_semantic(train, held, out, seed=s.seed)
            extra["files"] = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
            reports[name] = write_quality(out, name, metrics, common | extra)
            continue
        extra = {"kenlm": train_kenlm, "wikiref": train_wikiref, "roberta": train_roberta}[name](
            s, train, out
        )
        model = "perplexity" if name == "kenlm" else name
        location = model_location(model, s.models_dir, s.lang)
        metrics = measure(model, location, texts, y)
        if name == "kenlm":
            extra["heldout_web_buckets"] = web_buckets(location, [p.text for p in held if p.label == 0])
        extra["files"] = {
            os.path.relpath(os.path.join(d, f), out): os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(out)
            for f in fs
        }
        reports[name] = write_quality(out, model, metrics, common | extra)
    return reports


def train_kenlm(s: TrainSettings, train: list[Piece], out: str) -> dict[str, Any]:
    """SentencePiece + pruned, quantised KenLM on the reference pieces; bucket cut-offs from the web pages."""
    from classifiers.perplexity import train_perplexity_model

    ref = [p.text for p in train if p.label == 1]
    web = [p.text for p in train if p.label == 0]
    meta = train_perplexity_model(
        ref,
        web,
        os.path.join(out, s.lang),
        vocab_size=s.sp_vocab,
        order=s.kenlm_order,
        seed=s.seed,
        prune=s.kenlm_prune,
        quantize_bits=s.kenlm_quantize_bits,
        percentiles=s.ppl_percentiles,
    )
    return {"kenlm": meta}


def web_buckets(location: str, pages: list[str]) -> dict[str, float]:
    """Share of held-out web pages per perplexity bucket (compare with the configured percentiles)."""
    from classifiers.perplexity import PerplexityModel

    model = PerplexityModel.load(location)
    buckets = [model.bucket(model.perplexity(t)) for t in pages]
    return {b: round(buckets.count(b) / max(1, len(buckets)), 3) for b in ("head", "middle", "tail")}


def train_wikiref(s: TrainSettings, train: list[Piece], out: str) -> dict[str, Any]:
    from classifiers.wikiref import train_fasttext

    rows = classifier_examples(train, s.seed)
    train_fasttext(rows, os.path.join(out, "model.ftz"), seed=s.seed, quantize=True)
    return {"train_examples": len(rows), "positives": sum(y for _, y in rows)}


def train_roberta(s: TrainSettings, train: list[Piece], out: str) -> dict[str, Any]:
    """A small RoBERTa from scratch (BPE vocabulary learnt on the training text), saved in float16."""
    import torch
    from transformers import AutoTokenizer, RobertaForSequenceClassification

    from classifiers.roberta import SmallConfig, build_model, fine_tune, train_bpe_tokenizer

    torch.set_num_threads(1)  # the same float sums on every machine, and no oversubscription on a shared one
    rows = classifier_examples(train, s.seed, s.roberta_max_per_class)
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    if s.roberta_init:
        tokenizer = AutoTokenizer.from_pretrained(s.roberta_init, local_files_only=True)
        model = RobertaForSequenceClassification.from_pretrained(
            s.roberta_init, local_files_only=True, num_labels=2
        )
    else:
        tokenizer = train_bpe_tokenizer(sorted(set(texts)), out, s.roberta_vocab)
        size = SmallConfig(
            hidden_size=s.roberta_hidden,
            num_hidden_layers=s.roberta_layers,
            num_attention_heads=max(1, s.roberta_hidden // 64),
            intermediate_size=4 * s.roberta_hidden,
            vocab_size=s.roberta_vocab,
        )
        model = build_model(tokenizer, size, s.seed)
    losses = fine_tune(
        model, tokenizer, texts, labels, epochs=s.roberta_epochs, max_length=s.roberta_max_length, seed=s.seed
    )
    model.half().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"train_examples": len(rows), "losses": losses, "label_balance": round(float(np.mean(labels)), 3)}
