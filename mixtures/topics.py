"""Topic-aware sampling inside one mixture entry (LLaMA-3 down-samples topics the web over-represents).

A stage YAML entry may give ``topics:`` (keys from :data:`classifiers.topics.TOPICS`), each with one of

* ``share``: that fraction of the entry's tokens exactly;
* ``max_share``: at most that fraction (a cap: "arts & entertainment at most 8% of web tokens");
* ``weight``: its natural share (its part of the entry's candidate tokens) multiplied by this, then renormalised.

Topics without a rule keep their natural proportions in whatever the fixed shares leave; caps are met by
water-filling (a capped topic is pinned at its cap and the rest is shared again).  Each topic is then sampled on
its own with the stage's seeded, deterministic sampler, so realised shares land within about one document of the
target.  An entry whose documents have no ``topic`` column (sources other than web, or a web run without the topic
step) is sampled as before and the manifest says the topic rules did not apply.

The scan tasks store one small integer per candidate (:func:`topic_codes`: the topic's place in the fixed
taxonomy) in the candidate partitions, never a string; the driver sees tokens per topic and partition only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOPIC_COLUMN = "topic"
#: the bucket of documents whose topic is null (empty text, or scored before the topic step existed)
NO_TOPIC = "(none)"
RULE_KEYS = ("share", "max_share", "weight")


class TopicRuleError(ValueError):
    """A ``topics:`` block that cannot be met as written."""


@dataclass(frozen=True)
class TopicRule:
    topic: str
    share: float | None = None
    max_share: float | None = None
    weight: float | None = None


def parse_topic_rules(block: Any, where: str) -> tuple[TopicRule, ...]:
    """``topics: {arts_entertainment: {max_share: 0.08}, sports: {weight: 0.5}}`` (a bare number is a share)."""
    from classifiers.topics import TOPICS

    if not block:
        return ()
    if not isinstance(block, dict):
        raise TopicRuleError(f"{where}: topics must map a topic to {{share | max_share | weight}}")
    rules = []
    for topic, rule in block.items():
        rule = rule if isinstance(rule, dict) else {"share": rule}
        if topic not in TOPICS:
            raise TopicRuleError(f"{where}: unknown topic {topic!r}; the topics are {', '.join(TOPICS)}")
        given = {k: rule[k] for k in RULE_KEYS if rule.get(k) is not None}
        if len(given) != 1 or set(rule) - set(RULE_KEYS):
            raise TopicRuleError(
                f"{where}: topics.{topic} needs exactly one of {', '.join(RULE_KEYS)}, got {rule}"
            )
        ((key, value),) = given.items()
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TopicRuleError(f"{where}: topics.{topic}.{key} must be a number, got {value!r}") from None
        if (key == "weight" and value < 0) or (key != "weight" and not 0 <= value <= 1):
            raise TopicRuleError(f"{where}: topics.{topic}.{key} = {value} is out of range")
        rules.append(TopicRule(str(topic), **{key: value}))
    fixed = sum(r.share or 0.0 for r in rules)
    if fixed > 1 + 1e-9:
        raise TopicRuleError(f"{where}: topic shares sum to {fixed:.4f}, more than 1")
    return tuple(rules)


def _topic_names() -> tuple[str, ...]:
    from classifiers.topics import TOPICS

    return tuple(TOPICS)


def topic_codes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int16 per document: the topic's index in the taxonomy, -1 for a null or unknown topic."""
    names = _topic_names()
    codes = pc.index_in(values, value_set=pa.array(names, pa.string()))
    return codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int16)


def topic_name(code: int) -> str:
    return _topic_names()[code] if code >= 0 else NO_TOPIC


@dataclass
class TopicPlan:
    """Target share of the entry's tokens per topic code, from the rules and the tokens each topic has."""

    available: dict[int, int]
    fractions: dict[int, float] = field(default_factory=dict)
    rules: tuple[TopicRule, ...] = ()
    notes: list[str] = field(default_factory=list)
    has_column: bool = True

    @property
    def applied(self) -> bool:
        return bool(self.rules) and bool(self.fractions)

    def capacity(self, max_epochs: float) -> float:
        """The most tokens the entry can give at these fractions under its epoch cap."""
        caps = [self.available[t] * max_epochs / f for t, f in self.fractions.items() if f > 0]
        return min(caps) if caps else 0.0


def plan_topics(
    rules: tuple[TopicRule, ...], available: dict[int, int] | None, origin: str
) -> TopicPlan | None:
    """The per-topic targets of an entry from its tokens per topic code (None: the source has no topic column);
    None: no rules and no topic column: nothing to say."""
    if available is None:
        if not rules:
            return None
        note = f"{origin} has no {TOPIC_COLUMN} column: topic rules do not apply"
        return TopicPlan({}, rules=rules, notes=[note], has_column=False)
    plan = TopicPlan(dict(sorted(available.items())), rules=rules)
    if rules:
        code = {name: i for i, name in enumerate(_topic_names())}
        plan.fractions = target_fractions({code[r.topic]: r for r in rules}, plan.available, plan.notes)
    return plan


def target_fractions(
    by_topic: dict[int, TopicRule], available: dict[int, int], notes: list[str]
) -> dict[int, float]:
    """Shares first, then the natural (weighted) proportions of the rest, with caps met by water-filling."""
    fixed = {
        t: float(r.share) for t, r in by_topic.items() if r.share is not None and available.get(t, 0) > 0
    }
    for t, r in by_topic.items():
        if available.get(t, 0) == 0:
            notes.append(f"no candidate document has topic {r.topic}: its rule has nothing to select")
    free = {
        t: a * (by_topic[t].weight if t in by_topic and by_topic[t].weight is not None else 1.0)
        for t, a in available.items()
        if t not in fixed and a > 0
    }
    free = {t: q for t, q in free.items() if q > 0}
    rest = 1.0 - sum(fixed.values())
    out = dict(fixed)
    if not free:
        total = sum(out.values())
        if total and abs(total - 1) > 1e-9:
            notes.append(
                f"the topic shares sum to {total:.4f} and no other topic has documents: renormalised"
            )
        return {t: v / total for t, v in out.items()} if total else {}
    while free:
        scale = rest / sum(free.values())
        over = {
            t: float(by_topic[t].max_share)  # type: ignore[arg-type]
            for t, q in free.items()
            if t in by_topic
            and by_topic[t].max_share is not None
            and q * scale > by_topic[t].max_share + 1e-12
        }
        if not over:
            return out | {t: q * scale for t, q in free.items()}
        for t, cap in over.items():
            out[t] = cap
            rest -= cap
            del free[t]
    raise TopicRuleError(
        f"the topic caps leave {rest:.4f} of the entry's tokens to no topic: every topic with documents is capped; "
        "raise a max_share or give a topic without a cap"
    )


def topic_report(plan: TopicPlan | None, realised: dict[int, int] | None) -> dict[str, Any]:
    """An entry's manifest keys: ``topics`` (per topic its share of the candidates, the target and realised share
    of the entry's tokens, the rule), ``topics_applied`` and ``topics_note``.  ``realised``: sampled tokens per
    topic code (None: the source has no topic column)."""
    if plan is None:
        return {}
    note = "; ".join(plan.notes)
    if realised is None:
        return {"topics": {}, "topics_applied": False, "topics_note": note}
    total = sum(realised.values()) or 1
    avail_total = sum(plan.available.values()) or 1
    code = {name: i for i, name in enumerate(_topic_names())}
    rules = {
        code[r.topic]: {k: getattr(r, k) for k in RULE_KEYS if getattr(r, k) is not None} for r in plan.rules
    }
    shares = {
        topic_name(t): {
            "rule": rules.get(t),
            "available": round(plan.available.get(t, 0) / avail_total, 6),
            "target": round(plan.fractions[t], 6) if plan.applied and t in plan.fractions else None,
            "realised": round(realised.get(t, 0) / total, 6),
            "realised_tokens": realised.get(t, 0),
        }
        for t in sorted(set(plan.available) | set(rules))
    }
    return {"topics": shares, "topics_applied": plan.applied, "topics_note": note}
