"""A generic threshold on one score column: the "decide" half of score-then-decide (``ppl_filter``, ``wikiref_filter``).

Because the score itself stays a column, the threshold can be re-chosen later in DuckDB or a mixture predicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipelines.core.steps import RowFilter


@dataclass
class ScoreFilter(RowFilter):
    """Rejects rows whose ``column`` is below ``min``, above ``max``, or not in ``allowed`` (nulls: ``keep_null``).

    Reasons name the rule: ``<name>:below_min`` etc., so DuckDB can count them."""

    column: str = ""
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    keep_null: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.column:
            raise ValueError(f"{self.name}: ScoreFilter needs `column` (the score column it reads)")

    @property
    def reads(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def reason(self, row: dict[str, Any]) -> str | None:
        value = row[self.column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None if self.keep_null else f"{self.name}:null"
        if self.allowed is not None and value not in self.allowed:
            return f"{self.name}:{value}"
        if self.min is not None and value < self.min:
            return f"{self.name}:below_min"
        if self.max is not None and value > self.max:
            return f"{self.name}:above_max"
        return None
