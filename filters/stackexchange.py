"""StackExchange rules (LLaMA-1 / RedPajama): the Q/A document format and the question-level filter.

The public ports sort answers by the score *string* (``"9" > "10"``); here scores are integers from the reader and
:func:`order_answers` sorts them as numbers, highest first, ties broken by answer id (older first) so that the
order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines.core.steps import RowFilter


@dataclass(frozen=True)
class Answer:
    post_id: int
    score: int
    text: str


def order_answers(answers: Sequence[Answer]) -> list[Answer]:
    """Highest score first, as numbers; equal scores by post id."""
    return sorted(answers, key=lambda a: (-a.score, a.post_id))


def format_qa(title: str, question: str, answers: Sequence[Answer]) -> str:
    """``Q: <title>`` + question body, then one ``A:`` block per answer in the given order."""
    head = f"Q: {title.strip()}" if title.strip() else "Q:"
    parts = [f"{head}\n{question.strip()}" if question.strip() else head]
    parts += [f"A: {a.text.strip()}" for a in answers]
    return "\n\n".join(parts)


def parse_tags(raw: str | None) -> list[str]:
    """Tags as stored by the dumps: ``<a><b>`` (until 2023) or ``|a|b|`` (later dumps)."""
    if not raw:
        return []
    raw = raw.strip()
    if raw.startswith("<"):
        return [t for t in raw.strip("<>").split("><") if t]
    return [t for t in raw.strip("|").split("|") if t]


@dataclass
class QAFilter(RowFilter):
    """Keeps questions with enough answers and scores (reads the reader's columns; ``None`` disables a rule)."""

    reads: ClassVar[tuple[str, ...]] = ("answer_count", "question_score", "best_answer_score")
    min_answers: int = 1
    min_question_score: int | None = None
    min_best_answer_score: int | None = None

    def reason(self, row: dict[str, Any]) -> str | None:
        n, qs, bs = row["answer_count"], row["question_score"], row["best_answer_score"]
        if (n or 0) < self.min_answers:
            return "se:no_answers" if not n else "se:too_few_answers"
        if self.min_question_score is not None and (qs is None or qs < self.min_question_score):
            return "se:low_question_score"
        if self.min_best_answer_score is not None and (bs is None or bs < self.min_best_answer_score):
            return "se:low_answer_score"
        return None
