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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from mixtures.sample import Sampled, sample_tokens

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


@dataclass
class TopicPlan:
    """Target share of the entry's tokens per topic, from the rules and the tokens each topic has."""

    available: dict[str, int]
    fractions: dict[str, float] = field(default_factory=dict)
    rules: tuple[TopicRule, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return bool(self.rules) and bool(self.fractions)

    def capacity(self, max_epochs: float) -> float:
        """The most tokens the entry can give at these fractions under its epoch cap."""
        caps = [self.available[t] * max_epochs / f for t, f in self.fractions.items() if f > 0]
        return min(caps) if caps else 0.0


def topic_of(con: duckdb.DuckDBPyConnection, view: str, columns: list[str]) -> dict[str, str] | None:
    """id -> topic of the entry's documents, or None when its origin has no topic column."""
    if TOPIC_COLUMN not in columns:
        return None
    rows = con.sql(f"SELECT id, any_value({TOPIC_COLUMN}) FROM {view} GROUP BY id").fetchall()
    return {i: t or NO_TOPIC for i, t in rows}


def plan_topics(
    rules: tuple[TopicRule, ...],
    ids: list[str],
    n_tokens: np.ndarray,
    topics: dict[str, str] | None,
    origin: str,
) -> TopicPlan | None:
    """The per-topic targets of an entry (None: no rules and no topic column: nothing to say)."""
    if topics is None:
        if not rules:
            return None
        return TopicPlan(
            {}, rules=rules, notes=[f"{origin} has no {TOPIC_COLUMN} column: topic rules do not apply"]
        )
    available: dict[str, int] = {}
    for i, n in zip(ids, n_tokens.tolist(), strict=True):
        available[topics.get(i, NO_TOPIC)] = available.get(topics.get(i, NO_TOPIC), 0) + int(n)
    plan = TopicPlan(dict(sorted(available.items())), rules=rules)
    plan.fractions = target_fractions(rules, plan.available, plan.notes) if rules else {}
    return plan


def target_fractions(
    rules: tuple[TopicRule, ...], available: dict[str, int], notes: list[str]
) -> dict[str, float]:
    """Shares first, then the natural (weighted) proportions of the rest, with caps met by water-filling."""
    by_topic = {r.topic: r for r in rules}
    fixed = {t: r.share for t, r in by_topic.items() if r.share is not None and available.get(t, 0) > 0}
    for t, r in by_topic.items():
        if available.get(t, 0) == 0 and (r.share or r.max_share or r.weight):
            notes.append(f"no candidate document has topic {t}: its rule has nothing to select")
    free = {
        t: a * (by_topic[t].weight if t in by_topic and by_topic[t].weight is not None else 1.0)
        for t, a in available.items()
        if t not in fixed and a > 0
    }
    free = {t: q for t, q in free.items() if q > 0}
    rest = 1.0 - sum(fixed.values())  # type: ignore[arg-type]
    out: dict[str, float] = {t: float(v) for t, v in fixed.items()}  # type: ignore[misc]
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
            t: by_topic[t].max_share
            for t, q in free.items()
            if t in by_topic
            and by_topic[t].max_share is not None
            and q * scale > by_topic[t].max_share + 1e-12
        }
        if not over:
            out |= {t: q * scale for t, q in free.items()}
            return out
        for t, cap in over.items():
            out[t] = float(cap)  # type: ignore[arg-type]
            rest -= float(cap)  # type: ignore[arg-type]
            del free[t]
    raise TopicRuleError(
        f"the topic caps leave {rest:.4f} of the entry's tokens to no topic: every topic with documents is capped; "
        "raise a max_share or give a topic without a cap"
    )


def sample_by_topic(
    ids: list[str],
    n_tokens: np.ndarray,
    topics: dict[str, str],
    plan: TopicPlan,
    target: float,
    seed: int,
    entry: str,
) -> Sampled:
    """Each topic's part of ``target`` sampled on its own (seeded per entry and topic)."""
    parts = []
    labels = np.array([topics.get(i, NO_TOPIC) for i in ids], dtype=object)
    for t, f in plan.fractions.items():
        idx = np.flatnonzero(labels == t)
        if f > 0 and len(idx):
            parts.append(
                sample_tokens([ids[i] for i in idx], n_tokens[idx], f * target, seed, f"{entry}/{t}")
            )
    return Sampled(
        [i for p in parts for i in p.ids],
        np.concatenate([p.epochs for p in parts] or [np.zeros(0, np.int32)]),
        np.concatenate([p.n_tokens for p in parts] or [np.zeros(0, np.int64)]),
    )


def topic_report(plan: TopicPlan | None, sampled: Sampled, topics: dict[str, str] | None) -> dict[str, Any]:
    """An entry's manifest keys: ``topics`` (per topic the target and realised share of the entry's tokens, and
    its share of the candidates), ``topics_applied`` and ``topics_note``."""
    if plan is None:
        return {}
    if topics is None:
        return {"topics": {}, "topics_applied": False, "topics_note": "; ".join(plan.notes)}
    realised: dict[str, int] = {}
    for i, n in zip(sampled.ids, sampled.n_tokens.tolist(), strict=True):
        realised[topics.get(i, NO_TOPIC)] = realised.get(topics.get(i, NO_TOPIC), 0) + int(n)
    total = sum(realised.values()) or 1
    avail_total = sum(plan.available.values()) or 1
    rules = {r.topic: {k: getattr(r, k) for k in RULE_KEYS if getattr(r, k) is not None} for r in plan.rules}
    shares = {
        t: {
            "rule": rules.get(t),
            "available": round(plan.available.get(t, 0) / avail_total, 6),
            "target": round(plan.fractions[t], 6) if plan.applied and t in plan.fractions else None,
            "realised": round(realised.get(t, 0) / total, 6),
            "realised_tokens": realised.get(t, 0),
        }
        for t in sorted(set(plan.available) | set(rules))
    }
    return {"topics": shares, "topics_applied": plan.applied, "topics_note": "; ".join(plan.notes)}
