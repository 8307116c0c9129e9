"""Dirty-word counting (LLaMA-3 §3.1.1: "dirty word counting ... to filter out adult websites that are not covered by
domain block lists"): the ``dirty_words`` score step adds ``dirty_frac``, the share of a page's words that belong to
phrases of its language's list, and the recipe's ``dirty_filter`` (a ``ScoreFilter``) rejects pages above a cut.

Lists: the LDNOOBW lists (the ones C4 and datatrove's C4 bad-words filter use), shipped in
``filters/wordlists/ldnoobw/`` with their CC-BY-4.0 licence (datatrove downloads them at run time, which cannot work
offline).  A page's language comes from the ``lang`` column of the LID step; a language without a list gets a null
``dirty_frac`` (never rejected).  Words are lower-cased ``\\w+`` runs and list entries match whole words (multi-word
entries match as phrases); for languages written without spaces (Chinese, Japanese, Thai) entries match as
substrings and the share is counted in characters, so no CJK page is judged by whitespace words.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from filters.languages import UNSPACED  # languages without spaces: entries match inside the running text
from pipelines.core.steps import Step, StepResult, set_column, texts

LISTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordlists", "ldnoobw")
#: extra list files read with a language's own
VARIANTS = {"fr": ("fr-CA-u-sd-caqc",)}
_WORD = re.compile(r"\w+", re.UNICODE)


def read_lists(folder: str) -> dict[str, set[str]]:
    """{language: entries} from ``<lang>.txt`` files (variants such as ``fr-CA-...`` join their base language)."""
    out: dict[str, set[str]] = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".txt"):
            continue
        code = name[:-4]
        base = next((b for b, v in VARIANTS.items() if code in v), code)
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            entries = {
                " ".join(_WORD.findall(line.lower())) if base not in UNSPACED else line.strip().lower()
                for line in f
            }
        out.setdefault(base, set()).update(e for e in entries if e)
    return out


class _Matcher:
    """All entries of one language in one Aho-Corasick automaton; counts the words (or characters) they cover."""

    def __init__(self, entries: set[str], unspaced: bool):
        import ahocorasick

        self.unspaced = unspaced
        self.automaton = ahocorasick.Automaton()
        for e in sorted(entries):
            key = e if unspaced else f" {e} "
            self.automaton.add_word(key, len(e) if unspaced else e.count(" ") + 1)
        self.automaton.make_automaton()

    def fraction(self, text: str) -> float:
        if self.unspaced:
            body = "".join(text.lower().split())
            if not body:
                return 0.0
            covered = bytearray(len(body))
            for end, length in self.automaton.iter(body):
                covered[end - length + 1 : end + 1] = b"\x01" * length
            return sum(covered) / len(body)
        words = _WORD.findall(text.lower())
        if not words:
            return 0.0
        joined = " " + " ".join(words) + " "
        word_at: dict[int, int] = {}  # character offset of each word's first letter -> word index
        pos = 1
        for i, w in enumerate(words):
            word_at[pos] = i
            pos += len(w) + 1
        covered = bytearray(len(words))
        for end, n in self.automaton.iter(joined):
            # a match ends on the space after its last word; overlapping phrases cover each word once
            last = word_at[joined.rfind(" ", 0, end) + 1]
            covered[last - n + 1 : last + 1] = b"\x01" * n
        return sum(covered) / len(words)


@dataclass
class DirtyWords(Step):
    """Adds ``dirty_frac``: the share of the page's words (characters, for unspaced scripts) in listed phrases of its
    language; null where no list exists.  ``lists_dir`` adds or replaces languages with the user's ``<lang>.txt``."""

    kind: ClassVar[str] = "score"
    reads: ClassVar[tuple[str, ...]] = ("text",)

    lists_dir: str | None = None
    #: the language assumed when the batch has no ``lang`` column
    default_language: str = "en"

    def adds(self) -> dict[str, pa.DataType]:
        return {"dirty_frac": pa.float32()}

    def setup(self) -> None:
        lists = read_lists(LISTS_DIR)
        if self.lists_dir:
            lists.update(read_lists(self.lists_dir))
        self._lists = lists
        self._matchers: dict[str, Any] = {}

    def _matcher(self, lang: str) -> _Matcher | None:
        if lang not in self._matchers:
            entries = self._lists.get(lang)
            self._matchers[lang] = _Matcher(entries, lang in UNSPACED) if entries else None
        return self._matchers[lang]

    def process(self, batch: pa.Table) -> StepResult:
        langs = (
            batch.column("lang").to_pylist()
            if "lang" in batch.column_names
            else [self.default_language] * batch.num_rows
        )
        values: list[float | None] = []
        for text, lang in zip(texts(batch), langs, strict=True):
            matcher = self._matcher(lang or self.default_language)
            values.append(None if matcher is None else matcher.fraction(text))
        return StepResult(set_column(batch, "dirty_frac", values, pa.float32()))
