"""``make models``: read the local corpora once, then train each model whose fingerprint changed.

A model's fingerprint is a hash of its input files (path, size, mtime), its settings and a format version; it is
written next to the model, and a rerun with the same fingerprint skips that model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from classifiers.corpora import Doc, corpus_files, files_fingerprint, read_corpus

log = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = 1


@dataclass
class TrainSettings:
    models_dir: str = "models"
    reference: str | None = None
    shared: str | None = None
    seed: int = 0
    kenlm_order: int = 5
    sp_vocab: int = 8000
    #: a language gets a KenLM model when it has this many reference documents
    min_lang_docs: int = 20
    roberta_layers: int = 4
    roberta_hidden: int = 256
    roberta_epochs: int = 2
    roberta_max_docs: int = 800
    roberta_max_length: int = 256
    #: local HF checkpoint to fine-tune instead of training from scratch
    roberta_init: str | None = None
    #: JSONL (text, label) to train RoBERTa on instead of the fastText-distilled labels
    roberta_labels: str | None = None
    only: list[str] = field(default_factory=lambda: ["kenlm", "wikiref", "roberta"])


def fingerprint(files: list[str], settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"files": files_fingerprint(files), "settings": settings, "format": FORMAT}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def up_to_date(model_dir: str, fp: str) -> bool:
    path = os.path.join(model_dir, "fingerprint")
    return os.path.exists(path) and open(path).read().strip() == fp


def mark(model_dir: str, fp: str, meta: dict[str, Any]) -> None:
    with open(os.path.join(model_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    with open(os.path.join(model_dir, "fingerprint"), "w") as f:
        f.write(fp)


def ensure_lmplz() -> None:
    """Build KenLM's trainer into the cache when it is missing (apt-get + cmake; about a minute)."""
    from classifiers.perplexity import KENLM_CACHE

    if os.path.exists(os.path.join(KENLM_CACHE, "bin", "lmplz")):
        return
    log.warning("building KenLM's lmplz into %s (once)", KENLM_CACHE)
    script = os.path.join(REPO, "classifiers", "build_kenlm.sh")
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    subprocess.run(
        ["bash", script, KENLM_CACHE, venv_python if os.path.exists(venv_python) else "python3"], check=True
    )


def tag_languages(docs: list[Doc]) -> list[Doc]:
    """Set each web document's language with lid.176 (the pages are multilingual)."""
    from filters.langid import lid_model_path, load_fasttext, predict_languages

    langs, _ = predict_languages(load_fasttext(lid_model_path()), [d.text for d in docs])
    return [Doc(d.text, d.origin, row[0] if row else "unknown") for d, row in zip(docs, langs, strict=True)]


def train_all(s: TrainSettings, force: bool = False) -> dict[str, Any]:
    """Train what is out of date; returns {model: report} (``skipped: true`` for models already up to date)."""
    ref_files = corpus_files("reference", s.shared, s.reference)
    web_files = corpus_files("web", s.shared)
    if not ref_files or not web_files:
        raise FileNotFoundError(
            f"no training text found (reference: {len(ref_files)} files, web: {len(web_files)}); "
            "give REFERENCE=<dir> or restore tests/fixtures/quality"
        )
    settings = asdict(s)
    plans = {
        "kenlm": fingerprint(
            ref_files + web_files,
            {k: settings[k] for k in ("seed", "kenlm_order", "sp_vocab", "min_lang_docs")},
        ),
        "wikiref": fingerprint(ref_files + web_files, {"seed": s.seed}),
    }
    plans["roberta"] = fingerprint(
        ref_files + web_files + ([s.roberta_labels] if s.roberta_labels else []),
        {k: v for k, v in settings.items() if k.startswith("roberta")}
        | {"seed": s.seed, "wikiref": plans["wikiref"]},
    )
    todo = [m for m in s.only if force or not up_to_date(os.path.join(s.models_dir, m), plans[m])]
    reports: dict[str, Any] = {m: {"skipped": True} for m in s.only if m not in todo}
    if not todo:
        return reports
    ref = read_corpus(ref_files)
    web = tag_languages(read_corpus(web_files))
    log.info("read %d reference and %d web documents", len(ref), len(web))
    for name in todo:
        out = os.path.join(s.models_dir, name)
        os.makedirs(out, exist_ok=True)
        reports[name] = {
            "kenlm": train_kenlm_models,
            "wikiref": train_wikiref_model,
            "roberta": train_roberta_model,
        }[name](s, ref, web, out)
        reports[name]["files"] = len(ref_files) + len(web_files)
        mark(out, plans[name], reports[name])
    return reports


def train_kenlm_models(s: TrainSettings, ref: list[Doc], web: list[Doc], out: str) -> dict[str, Any]:
    """One model per language with enough reference text; Wikipedia text is preferred when present (as CCNet)."""
    import numpy as np

    from classifiers.perplexity import PerplexityModel, train_perplexity_model

    ensure_lmplz()
    report: dict[str, Any] = {}
    for lang in sorted({d.lang for d in ref}):
        docs = [d.text for d in ref if d.lang == lang]
        wiki = [d.text for d in ref if d.lang == lang and d.origin.startswith("wikipedia")]
        pool = wiki if len(wiki) >= s.min_lang_docs else docs
        if len(pool) < s.min_lang_docs:
            continue
        random.Random(s.seed).shuffle(pool)
        k = max(2, len(pool) // 10)
        held, train = pool[:k], pool[k:]
        web_lang = [d.text for d in web if d.lang == lang]
        meta = train_perplexity_model(
            train, web_lang, os.path.join(out, lang), vocab_size=s.sp_vocab, order=s.kenlm_order, seed=s.seed
        )
        model = PerplexityModel.load(os.path.join(out, lang))
        meta["median_ppl_heldout_reference"] = round(float(np.median([model.perplexity(t) for t in held])), 1)
        if web_lang:
            meta["median_ppl_web"] = round(float(np.median([model.perplexity(t) for t in web_lang])), 1)
        report[lang] = meta
    return report


def train_wikiref_model(s: TrainSettings, ref: list[Doc], web: list[Doc], out: str) -> dict[str, Any]:
    from classifiers.wikiref import train_wikiref

    pos = [d.text for d in ref if d.lang == "en"]
    neg = [d.text for d in web if d.lang == "en"]
    return train_wikiref(pos, neg, out, seed=s.seed) | {"positives": len(pos), "negatives": len(neg)}


def train_roberta_model(s: TrainSettings, ref: list[Doc], web: list[Doc], out: str) -> dict[str, Any]:
    """Labels distilled from the wiki-reference classifier (or the user's file); source labels kept as truth."""
    import numpy as np

    from classifiers.roberta import SmallConfig, read_label_file, train_roberta

    if s.roberta_labels:
        texts, labels = read_label_file(s.roberta_labels)
        truth = None
    else:
        from classifiers.wikiref import wiki_probability
        from filters.langid import load_fasttext

        wikiref = os.path.join(s.models_dir, "wikiref", "model.bin")
        if not os.path.exists(wikiref):
            raise FileNotFoundError(
                f"{wikiref} is missing: train the wiki-reference model first (make models)"
            )
        rng = random.Random(s.seed)
        neg = [d.text for d in web if d.lang == "en"]
        pos = [d.text for d in ref if d.lang == "en"]
        neg = rng.sample(neg, min(len(neg), s.roberta_max_docs // 2))
        pos = rng.sample(pos, min(len(pos), s.roberta_max_docs - len(neg)))
        texts = pos + neg
        truth = [1] * len(pos) + [0] * len(neg)
        from filters import langid

        langid._MODELS.pop(wikiref, None)
        labels = [int(p >= 0.5) for p in wiki_probability(load_fasttext(wikiref), texts)]
    size = SmallConfig(
        hidden_size=s.roberta_hidden,
        num_hidden_layers=s.roberta_layers,
        num_attention_heads=max(1, s.roberta_hidden // 64),
        intermediate_size=4 * s.roberta_hidden,
    )
    meta = train_roberta(
        texts,
        labels,
        out,
        init_from=s.roberta_init,
        size=size,
        epochs=s.roberta_epochs,
        max_length=s.roberta_max_length,
        seed=s.seed,
        truth=truth,
    )
    meta["label_balance"] = round(float(np.mean(labels)), 3)
    return meta
