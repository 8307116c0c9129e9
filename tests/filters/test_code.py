"""RedPajama's alpha-per-token rule with real BPE tokens (Llama-3's vocabulary through quicktok, offline)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from filters.code import CodeQualityFilter, CodeStats, bpe_token_counts, code_stats, load_tokenizer
from tests.helpers.paths import corpus_path
from tests.helpers.sources import read_kind, run_source

CODE = '''"""Small geometry helpers."""

import math


def distance(first, second):
    """Euclidean distance between two points given as (x, y) tuples."""
    return math.hypot(second[0] - first[0], second[1] - first[1])


class Polygon:
    def __init__(self, points):
        self.points = list(points)

    def perimeter(self):
        pairs = zip(self.points, self.points[1:] + self.points[:1])
        return sum(distance(a, b) for a, b in pairs)
'''


def hex_table(seed: int = 0, rows: int = 64) -> str:
    """An embedded binary blob as C source: the kind of file the rule exists for."""
    rng = random.Random(seed)
    lines = ["static const unsigned char firmware_image[] = {"]
    for _ in range(rows):
        lines.append("  " + ",".join(f"0x{rng.randrange(256):02x}" for _ in range(16)) + ",")
    lines.append("};")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def llama3():
    return load_tokenizer("llama3")


def _whitespace_ratio(text: str) -> float:
    """The first version's rule: alphabetic characters per whitespace word."""
    return sum(c.isalpha() for c in text) / max(len(text.split()), 1)


def test_bpe_tokens_catch_what_whitespace_words_let_through(llama3):
    blob = hex_table()
    (n_blob,), (n_code,) = bpe_token_counts([blob], llama3), bpe_token_counts([CODE], llama3)
    assert (
        _whitespace_ratio(blob) > 1.5
    )  # whitespace words: one per row of 16 bytes, the old rule never fired
    assert code_stats(blob, n_blob)[3] < 1.5  # BPE: ~2 tokens per byte written as 0xNN
    assert code_stats(CODE, n_code)[3] > 2.0  # ordinary code stays far above the threshold
    assert n_code > len(CODE.split())  # BPE tokens outnumber whitespace words on code


def test_score_then_decide(llama3):
    batch = pa.table({"text": [CODE, hex_table(1), ""]})
    scored = CodeStats()(batch).table
    assert scored.column("alpha_per_token").to_pylist()[2] == 0.0  # an empty file has no tokens
    reasons = CodeQualityFilter()(scored).reasons
    assert reasons == [None, "code:alpha_per_token", "code:alnum_frac"]
    # the threshold is a setting: at 0.4 the blob (0.42 letters per token) passes
    assert CodeQualityFilter(min_alpha_per_token=0.4)(scored).reasons[1] is None


def test_missing_tokenizer_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_quicktok(name, *args, **kwargs):
        if name == "quicktok":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_quicktok)
    with pytest.raises(ImportError, match="pip install quicktok-v1"):
        load_tokenizer("llama3")


@pytest.mark.integration
def test_alpha_per_token_on_real_repositories(tmp_path):
    """On the shared sample (5 repositories, 90 code files) the rule drops 2 files with real BPE tokens, where
    whitespace words dropped none: kilo's Makefile and micrograd's number-heavy test file."""
    run_source("github", corpus_path("github"), str(tmp_path))
    rejected = read_kind(str(tmp_path), "github", "rejected").to_pylist()
    ids = sorted(r["id"] for r in rejected if r["reason"] == "code:alpha_per_token")
    assert ids == ["antirez--kilo/Makefile", "karpathy--micrograd/test/test_engine.py"]
