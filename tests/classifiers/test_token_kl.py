"""Token-distribution outliers (classifiers/token_kl.py): the vectorised KL equals the definition, the shipped
reference scores keyword spam and base64 above its cut and real prose below it, and a reference can be rebuilt."""

from __future__ import annotations

import base64
import json
import math
import os
import random

import numpy as np
import pyarrow as pa
import pytest

from classifiers.token_kl import (
    DEFAULT_DIR,
    TokenKL,
    _encoding,
    build_reference,
    encode,
    kl_divergence,
    load_reference,
)
from tests.helpers.paths import FIXTURES

pytest.importorskip("quicktok")


def _prose() -> list[str]:
    """Realistic prose written for the fixtures (books, the quality samples): none of it is in the reference."""
    out = []
    books = os.path.join(FIXTURES, "books")
    for name in sorted(os.listdir(books)):
        if name.startswith("pg") and name.endswith(".txt"):
            out.append(open(os.path.join(books, name), encoding="latin-1").read())
    for name in ("reference.jsonl", "web.jsonl"):
        for line in open(os.path.join(FIXTURES, "quality", name), encoding="utf-8"):
            text = json.loads(line)["text"]
            if len(text) > 600:
                out.append(text)
    return out


def test_vectorised_kl_equals_the_definition():
    enc = _encoding("llama3")
    docs = ["the river the river flows to the sea", "a b c d e f g", "zebra " * 5, ""]
    ids, offsets = encode(enc, docs)
    counts, _ = load_reference(DEFAULT_DIR)
    log_q = np.log((counts + 0.5) / (counts.sum() + 0.5 * len(counts)))
    kl, lengths = kl_divergence(ids, offsets, log_q)
    for i, d in enumerate(docs):
        toks = enc.encode_ordinary(d)
        assert lengths[i] == len(toks)
        expected = sum((c / len(toks)) * (math.log(c / len(toks)) - log_q[t])
                       for t, c in zip(*np.unique(toks, return_counts=True), strict=True)) if toks else 0.0
        assert kl[i] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_shipped_reference_flags_spam_and_base64_not_prose():
    rng = random.Random(0)
    spam = " ".join(rng.choice(["cheap", "viagra", "casino", "bonus", "free", "win", "pills", "loan"]) for _ in range(400))
    b64 = base64.b64encode(rng.randbytes(3000)).decode()
    prose = _prose()
    assert len(prose) >= 3
    step = TokenKL()
    values = step(pa.table({"text": [spam, b64, "a short line", *prose]})).table.column("token_kl").to_pylist()
    cut = json.load(open(os.path.join(DEFAULT_DIR, "reference.json")))["cut"]
    prose_kl = values[3:]
    assert all(v is not None and v < cut for v in prose_kl)
    assert values[0] > cut  # keyword spam: a few tokens repeated, far from the corpus distribution
    assert values[1] > max(prose_kl)  # base64 ranks above all prose, near the cut (length matters: see module)
    assert values[2] is None  # under min_tokens: not judged


def test_build_reference_writes_counts_and_a_cut(tmp_path):
    prose = _prose()
    meta = build_reference(prose * 10, str(tmp_path), percentile=90, origin="fixture books")
    counts, saved = load_reference(str(tmp_path))
    assert saved == meta and counts.sum() == meta["reference_tokens"] > 5_000
    assert meta["kl_percentiles"]["50"] <= meta["cut"] <= meta["kl_percentiles"]["99"]
    with pytest.raises(FileNotFoundError, match="winnow models token-kl"):
        load_reference(str(tmp_path / "missing"))


def test_winnow_models_token_kl_builds_a_reference_from_parquet_docs(tmp_path, capsys):
    import pyarrow.parquet as pq

    from tests.helpers.cli import command

    docs = tmp_path / "docs"
    docs.mkdir()
    texts = _prose() * 10
    pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), docs / "a.parquet")
    out = tmp_path / "ref"
    assert command("models")(["token-kl", "--input", str(docs), "--out", str(out), "--percentile", "95"]) == 0
    assert f"steps.token_kl_filter.max: {json.load(open(out / 'reference.json'))['cut']}" in capsys.readouterr().out
    assert command("models")(["token-kl", "--input", str(tmp_path / "empty-nothing")]) == 2  # no text: exit 2
