"""StackExchange rules (LLaMA-1 / RedPajama): the Q/A document format and the question-level filter.

The public ports sort answers by the score *string* (``"9" > "10"``); here scores are integers from the reader and
:func:`order_answers` sorts them as numbers, highest first, ties broken by answer id (older first) so that the
order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from pipelines.core.steps import Step, StepResult


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
class QAFilter(Step):
    """Keeps questions with enough answers and scores (reads the reader's columns; ``None`` disables a rule)."""

    kind: ClassVar[str] = "filter"
    reads: ClassVar[tuple[str, ...]] = ("answer_count", "question_score", "best_answer_score")
    min_answers: int = 1
    min_question_score: int | None = None
    min_best_answer_score: int | None = None

    @classmethod
    def default_name(cls) -> str:
        return "qa_filter"

    def process(self, batch: pa.Table) -> StepResult:
        answers = batch.column("answer_count").to_pylist()
        qscores = batch.column("question_score").to_pylist()
        best = batch.column("best_answer_score").to_pylist()
        reasons: list[str | None] = []
        for n, qs, bs in zip(answers, qscores, best, strict=True):
            if (n or 0) < self.min_answers:
                reasons.append("se:no_answers" if not n else "se:too_few_answers")
            elif self.min_question_score is not None and (qs is None or qs < self.min_question_score):
                reasons.append("se:low_question_score")
            elif self.min_best_answer_score is not None and (bs is None or bs < self.min_best_answer_score):
                reasons.append("se:low_answer_score")
            else:
                reasons.append(None)
        return StepResult(batch, reasons)
