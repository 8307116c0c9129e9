"""Source-code cleaning after RedPajama v1 (LLaMA-1): strip license headers, score line statistics, filter on them.

Score, then decide: :class:`CodeStats` adds ``max_line_length``, ``avg_line_length``, ``alnum_frac`` and
``alpha_per_token``; :class:`CodeQualityFilter` only compares them with its thresholds, so a different cut can be
chosen later in DuckDB.  ``alpha_per_token`` is RedPajama's rule as written (``github_run_filter.py``: alphabetic
characters / BPE tokens of the whole file, drop below 1.5), with the tokens of a real BPE vocabulary that works
offline: Llama-3's through ``quicktok`` (the same one the mixtures count tokens with).  RedPajama used GPT-NeoX's
50k vocabulary; Llama-3's 128k one cuts code into somewhat fewer tokens, so the same 1.5 is a little more lenient.
Whitespace words (this module's first version) are ~2.5x fewer than BPE tokens on code and almost never fired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from pipelines.core.steps import RowFilter, Step, StepResult, set_column, texts

_LEGAL = re.compile(r"copyright|licen[cs]e|spdx-license-identifier|all rights reserved|\(c\)", re.IGNORECASE)
_HASH = (
    "python",
    "shell",
    "ruby",
    "perl",
    "r",
    "makefile",
    "cmake",
    "dockerfile",
    "yaml",
    "powershell",
    "julia",
)
_DASH = ("sql", "lua", "haskell")
#: line-comment prefixes per language; block comments (``/* */``, ``<!-- -->``) are recognised for every language
_LINE_PREFIXES: dict[str, tuple[str, ...]] = {
    **{lang: ("#",) for lang in _HASH},
    **{lang: ("--",) for lang in _DASH},
    "php": ("//", "#"),
    "tex": ("%",),
    "matlab": ("%",),
    "assembly": (";",),
    "visual basic": ("'",),
    "fortran": ("!",),
}
_DEFAULT_PREFIXES = ("//",)
_KEEP_FIRST = re.compile(r"^(#!|#\s*-\*-|#\s*(vim?|coding)[:=])")


def leading_comment_block(text: str, language: str | None = None) -> tuple[int, int]:
    """(start, end) line indices of the comment block that opens a file, after a shebang/encoding line."""
    prefixes = _LINE_PREFIXES.get((language or "").lower(), _DEFAULT_PREFIXES)
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _KEEP_FIRST.match(lines[i]):
        i += 1
    start = i
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("/*") or stripped.startswith("<!--"):
            close = "*/" if stripped.startswith("/*") else "-->"
            tail = stripped[2:]  # the opening line may also close the block
            while close not in tail:
                i += 1
                if i >= len(lines):
                    return start, i
                tail = lines[i]
            if tail.split(close, 1)[1].strip():  # code after the comment on the same line: not a header
                break
            i += 1
        elif not stripped or stripped.startswith(prefixes):
            i += 1
        else:
            break
    return start, i


def strip_license_header(text: str, language: str | None = None) -> str:
    """Remove the leading comment block when it is a license/copyright notice; other comments stay."""
    start, end = leading_comment_block(text, language)
    if end <= start:
        return text
    lines = text.split("\n")
    block = "\n".join(lines[start:end])
    if not _LEGAL.search(block):
        return text
    rest = lines[end:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    return "\n".join(lines[:start] + rest)


@dataclass
class StripLicenseHeader(Step):
    """Transform: drop license/copyright comment headers (they repeat across files and carry no code)."""

    kind: ClassVar[str] = "transform"
    reads: ClassVar[tuple[str, ...]] = ("text", "language")

    def process(self, batch: pa.Table) -> StepResult:
        before = texts(batch)
        langs = batch.column("language").to_pylist()
        after = [strip_license_header(t, lang) for t, lang in zip(before, langs, strict=True)]
        changed = sum(a != b for a, b in zip(after, before, strict=True))
        return StepResult(set_column(batch, "text", after, pa.large_string()), changed=changed)


def load_tokenizer(name: str) -> Any:
    """A quicktok encoding by name (``llama3``: its vocabulary ships in the package, nothing is downloaded)."""
    try:
        import quicktok
    except ImportError:
        raise ImportError("the alpha_per_token rule needs a BPE tokenizer: pip install quicktok-v1") from None
    return quicktok.get_encoding(name)


def bpe_token_counts(texts: list[str], encoding: Any) -> list[int]:
    """BPE tokens per text (special-token strings in code are counted as ordinary text)."""
    import quicktok

    return [int(n) for n in quicktok.count_batch(encoding, texts, threads=1)] if texts else []


def code_stats(text: str, n_tokens: int) -> tuple[int, float, float, float]:
    """(max line length, mean line length, alphanumeric fraction, alphabetic characters per BPE token)."""
    lines = text.splitlines() or [""]
    lengths = [len(line) for line in lines]
    n = max(len(text), 1)
    alnum = sum(c.isalnum() for c in text)
    alpha = sum(c.isalpha() for c in text)
    return max(lengths), sum(lengths) / len(lengths), alnum / n, alpha / n_tokens if n_tokens else 0.0


@dataclass
class CodeStats(Step):
    """Score: RedPajama's per-file line statistics; tokens for ``alpha_per_token`` from the ``tokenizer`` BPE."""

    kind: ClassVar[str] = "score"

    #: a quicktok encoding name; ``llama3`` ships with the package (no download)
    tokenizer: str = "llama3"

    def setup(self) -> None:
        self._encoding = load_tokenizer(self.tokenizer)

    def adds(self) -> dict[str, pa.DataType]:
        return {
            "max_line_length": pa.int32(),
            "avg_line_length": pa.float32(),
            "alnum_frac": pa.float32(),
            "alpha_per_token": pa.float32(),
        }

    def process(self, batch: pa.Table) -> StepResult:
        docs = texts(batch)
        counts = bpe_token_counts(docs, self._encoding)
        stats = [code_stats(t, n) for t, n in zip(docs, counts, strict=True)]
        for i, (name, dtype) in enumerate(self.adds().items()):
            batch = set_column(batch, name, [s[i] for s in stats], dtype)
        return StepResult(batch)


@dataclass
class CodeQualityFilter(RowFilter):
    """Decide on :class:`CodeStats`' columns (RedPajama thresholds by default); the first failing rule is the reason."""

    reads: ClassVar[tuple[str, ...]] = ("max_line_length", "avg_line_length", "alnum_frac", "alpha_per_token")

    max_line_length: int = 1000
    max_avg_line_length: float = 100.0
    min_alnum_frac: float = 0.25
    min_alpha_per_token: float = 1.5

    def reason(self, row: dict[str, Any]) -> str | None:
        if row["max_line_length"] > self.max_line_length:
            return "code:max_line_length"
        if row["avg_line_length"] > self.max_avg_line_length:
            return "code:avg_line_length"
        if row["alnum_frac"] < self.min_alnum_frac:
            return "code:alnum_frac"
        if row["alpha_per_token"] < self.min_alpha_per_token:
            return "code:alpha_per_token"
        return None
