"""Code and math classifiers for web pages, and the step that routes pages by domain (LLaMA-3's "domain-specific
pipelines" for code and reasoning; issue 18 parts 0 and 1).

One fastText model with three labels (``code``, ``math``, ``prose``) trained one-vs-all (``loss="ova"``): each label
gets its own sigmoid, so ``code_prob`` and ``math_prob`` are independent probabilities (a numerical-methods tutorial
may be both) from one pass over the text and one small file, instead of two models that each tokenise every page.
Text is lower-cased and cut into words *and* punctuation (``def``, ``(``, ``\\frac``, ``{``, ``=``): the symbols are
what tells code and formulas from prose, and fastText's whitespace tokeniser would glue them to the words.

:class:`DomainScore` runs right after extraction, before LID and the prose heuristics: it adds ``code_prob``,
``math_prob`` and ``domain`` (code/math/prose).  A page needs the classifier's score *and* some code syntax or
math signs (:func:`evidence`): the model alone also reads digit tables and forum threads as code or math.  Steps
listed under the config's ``domains.exempt`` (or with ``skip_domains`` of their own) let those pages through
(``pipelines.core.steps.Step.skip_domains``), and :class:`DomainRules` judges them instead with reasons of their
own (``code:too_short``, ``code:minified``, ``math:too_short``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from classifiers.domain_data import CODE, LABELS, MATH
from classifiers.steps import DEFAULT_MODELS, absolute_path
from pipelines.core.steps import DOMAIN_COLUMN, RowFilter, Step, StepResult, set_column, texts

log = logging.getLogger(__name__)

DEFAULT_MODEL = os.path.join(DEFAULT_MODELS, "domains", "model.ftz")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
#: brackets, operators and quotes: every code file of the training repositories has >= 2% of its non-space
#: characters among them; a table of numbers (which the classifier may read as code) has none
CODE_SYMBOLS = frozenset("(){}[];=<>|&*+\"'`$\\")
CODE_MIN_SYMBOLS = 0.01
#: operators, TeX and math signs: half of the arXiv chunks have > 4% of their non-space characters among them, web
#: and Wikipedia prose almost none; a forum thread or a foreign-language page the classifier calls math has none
MATH_SYMBOLS = frozenset("=+^_\\$<>{}≤≥≠≈∑∏∫√∞∈∉⊂⊆∀∃∂∇πθλμσαβγδε±×÷·′″²³")
MATH_MIN_SYMBOLS = 0.002
_NOT_TEX = re.compile(r"\\(?![A-Za-z])")
#: characters of a page the classifier reads (the start of a page says what it is; keeps the cost flat)
MAX_CHARS = 8000


def preprocess(text: str, max_chars: int = MAX_CHARS) -> str:
    """One line of lower-case words and punctuation marks separated by spaces; newlines become ``<nl>``."""
    lines = (" ".join(_TOKEN.findall(line)) for line in text[:max_chars].lower().split("\n"))
    return " <nl> ".join(line for line in lines if line)


#: the domain model's fastText settings (fastText's own names): one-vs-all, so each label has its own sigmoid
FASTTEXT_SETTINGS: dict[str, Any] = {
    "epoch": 25,
    "dim": 32,
    "wordNgrams": 2,
    "lr": 0.2,
    "loss": "ova",
    "minCount": 2,
    "bucket": 200_000,
}


def train_domain_model(
    examples: list[tuple[str, int]], out_path: str, seed: int = 0, quantize: bool = True, **params: Any
) -> str:
    """fastText on (text, label index) pairs (:func:`classifiers.fasttext_train.fit_fasttext`); ``params``
    override :data:`FASTTEXT_SETTINGS`."""
    from classifiers.fasttext_train import fit_fasttext, labelled_lines

    lines = labelled_lines(((text, LABELS[label]) for text, label in examples), preprocess)
    fit_fasttext(lines, out_path, cutoff=50_000, quantize=quantize, seed=seed, **(FASTTEXT_SETTINGS | params))
    return out_path


def domain_probabilities(model: Any, docs: list[str]) -> dict[str, np.ndarray]:
    """{label: P(label)} per text (independent one-vs-all probabilities), batched through fastText's C++ loop."""
    out = {name: np.zeros(len(docs), dtype=np.float32) for name in LABELS}
    if not docs:
        return out
    labels, probs = model.predict([preprocess(d) for d in docs], k=-1, threshold=0.0)
    for i, (labs, prs) in enumerate(zip(labels, probs, strict=True)):
        for lab, p in zip(labs, prs, strict=True):
            name = lab[len("__label__") :]
            if name in out:
                out[name][i] = min(1.0, float(p))
    return out


def symbol_share(text: str, symbols: frozenset[str] = CODE_SYMBOLS) -> float:
    """Share of the non-space characters that are in ``symbols``."""
    chars = "".join(text.split())
    return sum(c in symbols for c in chars) / len(chars) if chars else 0.0


def evidence(
    text: str, code_min: float = CODE_MIN_SYMBOLS, math_min: float = MATH_MIN_SYMBOLS
) -> tuple[bool, bool]:
    """(has code syntax, has math signs): a page goes to a domain only with the classifier's score and its signs."""
    maths = _NOT_TEX.sub(
        "", text
    )  # a backslash counts only as a TeX command (\\frac), not as an escape (\\|)
    return symbol_share(text) >= code_min, symbol_share(maths, MATH_SYMBOLS) >= math_min


def route(
    code_prob: float,
    math_prob: float,
    code_min: float,
    math_min: float,
    code_ok: bool = True,
    math_ok: bool = True,
) -> str:
    """``code`` or ``math`` when its probability reaches its threshold (the higher one when both do), else prose;
    ``code_ok``/``math_ok`` False: the page lacks code syntax / math signs (see :class:`DomainScore`)."""
    code_ok, math_ok = code_prob >= code_min and code_ok, math_prob >= math_min and math_ok
    if code_ok and (not math_ok or code_prob >= math_prob):
        return LABELS[CODE]
    return LABELS[MATH] if math_ok else "prose"


@dataclass
class DomainScore(Step):
    """Adds ``code_prob``, ``math_prob`` and ``domain`` (code/math/prose) from the fastText domain classifier.

    Runs on the raw extracted text, before LID and the prose heuristics, so that steps with ``skip_domains`` can
    let code and math pages through.  ``code_min``/``math_min`` are the routing thresholds; the probabilities are
    kept, so a mixture can select with another cut later (``mixtures/anneal.yaml``)."""

    kind: ClassVar[str] = "score"
    #: None: the shipped model (classifiers/default_models/domains/model.ftz); `make models CODE=...` trains yours
    model_path: str | None = None
    code_min: float = 0.5
    math_min: float = 0.5
    max_chars: int = MAX_CHARS
    #: a page is routed to code only when at least this share of its non-space characters are brackets, operators
    #: or quotes (CODE_SYMBOLS): the classifier reads digits and punctuation, and a price list scores as code
    code_min_symbols: float = CODE_MIN_SYMBOLS
    #: and to math only with at least this share of operators, TeX or math signs (MATH_SYMBOLS)
    math_min_symbols: float = MATH_MIN_SYMBOLS
    #: domain -> the recipe's steps its pages skip (added to those steps' ``skip_domains``; see :func:`exempt`)
    exempt: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model_path = absolute_path(self.model_path)

    def adds(self) -> dict[str, pa.DataType]:
        return {"code_prob": pa.float32(), "math_prob": pa.float32(), DOMAIN_COLUMN: pa.string()}

    def _path(self) -> str:
        return self.model_path or DEFAULT_MODEL

    def check(self) -> None:
        if not os.path.exists(self._path()):
            raise FileNotFoundError(
                f"domain model {self._path()} is missing: run `make models-domains CODE=... MATH=... PROSE=...`"
            )

    def setup(self) -> None:
        from filters.langid import load_fasttext

        self.check()
        self._model = load_fasttext(self._path())

    def process(self, batch: pa.Table) -> StepResult:
        docs = [t[: self.max_chars] for t in texts(batch)]
        probs = domain_probabilities(self._model, docs)
        code, math = probs["code"], probs["math"]
        domains = [
            route(
                float(c),
                float(m),
                self.code_min,
                self.math_min,
                *evidence(t, self.code_min_symbols, self.math_min_symbols),
            )
            for c, m, t in zip(code, math, docs, strict=True)
        ]
        batch = set_column(batch, "code_prob", code, pa.float32())
        batch = set_column(batch, "math_prob", math, pa.float32())
        return StepResult(set_column(batch, DOMAIN_COLUMN, domains, pa.string()))


def exempt(steps: list[Step], known: list[str]) -> list[Step]:
    """Add each domain of a :class:`DomainScore` step's ``exempt`` mapping to the ``skip_domains`` of the steps it
    lists (names from ``known``, the recipe's steps; a switched-off one is simply absent)."""
    by_name = {s.name: s for s in steps}
    for router in (s for s in steps if isinstance(s, DomainScore)):
        for domain, names in router.exempt.items():
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(
                    f"steps.{router.name}.exempt.{domain}: unknown step(s) {unknown}; known: {known}"
                )
            if router.name in names:
                raise ValueError(f"steps.{router.name}.exempt.{domain} names the router itself")
            for step in (by_name[n] for n in names if n in by_name):
                if domain not in step.skip_domains:
                    step.skip_domains = [*step.skip_domains, domain]
    return steps


@dataclass
class DomainRules(RowFilter):
    """The rules code and math pages go through instead of the prose heuristics (prose rows pass untouched).

    ``min_chars``: per domain, pages shorter than this are rejected ``<domain>:too_short`` (a snippet is not a
    tutorial); ``code_max_mean_line_chars``: minified or generated code (one huge line) is ``code:minified``."""

    reads: ClassVar[tuple[str, ...]] = ("text", DOMAIN_COLUMN)
    min_chars: dict[str, int] = field(default_factory=lambda: {"code": 300, "math": 300})
    code_max_mean_line_chars: int = 200

    def reason(self, row: dict[str, Any]) -> str | None:
        domain, text = row[DOMAIN_COLUMN], row["text"] or ""
        if domain not in self.min_chars:
            return None
        if len(text.strip()) < self.min_chars[domain]:
            return f"{domain}:too_short"
        if domain == "code":
            lines = [line for line in text.split("\n") if line.strip()]
            if lines and sum(map(len, lines)) / len(lines) > self.code_max_mean_line_chars:
                return "code:minified"
        return None


# -- training and held-out measurement -----------------------------------------------------------------------------
#: training chunks per document at most (evenly spaced): one long book does not outweigh a hundred web pages
MAX_TRAIN_CHUNKS_PER_DOC = 60
#: held-out AUC (each domain against the rest) a model must reach for its quality.json to say ``meets_bar``
BAR_AUC = 0.90


def _per_document(pieces: list[Any], cap: int) -> list[Any]:
    """At most ``cap`` evenly spaced pieces of each document (kind, key), in a stable order."""
    by_doc: dict[tuple[int, str, str], list[Any]] = {}
    for p in pieces:
        by_doc.setdefault((p.label, p.kind, p.key), []).append(p)
    out: list[Any] = []
    for key in sorted(by_doc):
        chunks = by_doc[key]
        out += chunks[:: max(1, len(chunks) // cap)][:cap]
    return out


def training_examples(pieces: list[Any], seed: int) -> list[tuple[str, int]]:
    """(text, label) with every class repeated up to about the size of the largest, shuffled with ``seed``."""
    import random

    rng = random.Random(seed)
    capped = _per_document(pieces, MAX_TRAIN_CHUNKS_PER_DOC)
    classes = [[(p.text, p.label) for p in capped if p.label == i] for i in range(len(LABELS))]
    largest = max(len(c) for c in classes)
    rows = [row for c in classes for row in c * max(1, round(largest / max(1, len(c))))]
    rng.shuffle(rows)
    return rows


def measure_domains(
    model: Any, held: list[Any], code_min: float = 0.5, math_min: float = 0.5
) -> dict[str, Any]:
    """Per domain (against every other held-out text): AUC, and precision/recall/accuracy at its threshold; the
    routing's confusion (true label -> routed domain) on the same texts."""
    from classifiers.evaluate import MAX_CHUNKS_PER_DOC
    from classifiers.wikiref import binary_metrics

    held = _per_document(held, MAX_CHUNKS_PER_DOC)
    probs = domain_probabilities(model, [p.text for p in held])
    labels = np.array([p.label for p in held])
    report: dict[str, Any] = {}
    for name, cut in (("code", code_min), ("math", math_min)):
        y = labels == LABELS.index(name)
        report[name] = binary_metrics(y, probs[name], threshold=cut) | {"positives": int(y.sum())}
    routed = [
        route(float(c), float(m), code_min, math_min, *evidence(p.text))
        for c, m, p in zip(probs["code"], probs["math"], held, strict=True)
    ]
    confusion = {
        true: {
            dom: sum(1 for lab, r in zip(labels, routed, strict=True) if LABELS[lab] == true and r == dom)
            for dom in LABELS
        }
        for true in LABELS
    }
    report["routing"] = {
        "accuracy": round(
            float(np.mean([LABELS[lab] == r for lab, r in zip(labels, routed, strict=True)])), 4
        ),
        "confusion": confusion,
        "n": len(held),
    }
    return report


def train_domains(
    code: list[str],
    math: list[str],
    prose: list[str],
    models_dir: str,
    labels: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on the training documents, measure on the held-out ones, write ``model.ftz`` + ``quality.json``."""
    import json
    import shutil

    from classifiers.dataset import SPLIT_RULE, split
    from classifiers.domain_data import load_domain_pieces
    from classifiers.fasttext_train import load_retrained

    pieces = load_domain_pieces(code, math, prose, labels)
    train, held = split(pieces)
    examples = training_examples(train, seed)
    out = os.path.join(models_dir, "domains")
    shutil.rmtree(out, ignore_errors=True)  # a retrain never leaves a stale file of the previous one
    # a small label file needs more passes: at least ~50,000 examples seen in all (25 epochs from 2,000 on)
    epoch = min(200, max(25, 50_000 // max(1, len(examples))))
    path = train_domain_model(examples, os.path.join(out, "model.ftz"), seed=seed, epoch=epoch)
    heldout = measure_domains(load_retrained(path), held)
    record = {
        "model": "domains",
        "labels": list(LABELS),
        "heldout": heldout,
        "bar_auc": BAR_AUC,
        "meets_bar": bool(min(heldout["code"]["auc"], heldout["math"]["auc"]) >= BAR_AUC),
        "split_rule": SPLIT_RULE,
        "heldout_documents": sorted({f"{LABELS[p.label]}:{p.kind}:{p.key}" for p in held}),
        "train_pieces": {name: sum(p.label == i for p in train) for i, name in enumerate(LABELS)},
        "train_examples": len(examples),
        # folders by name only: where the text lay on the training machine is no part of the model
        "settings": {
            "code": [os.path.basename(os.path.normpath(f)) for f in code],
            "math": [os.path.basename(os.path.normpath(f)) for f in math],
            "prose": [os.path.basename(os.path.normpath(f)) for f in prose],
            "labels": os.path.basename(labels) if labels else None,
            "seed": seed,
            "epoch": epoch,
            "max_chars": MAX_CHARS,
        },
        "files": {"model.ftz": os.path.getsize(path)},
    }
    with open(os.path.join(out, "quality.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return record
