"""Token-budget sampling of a mixture build, planned by the driver from per-partition totals, run as tasks.

Each entry (or, with topic rules, each topic of it) is a *group* with a token target ``T`` over ``A`` available
tokens: ``floor(T/A)`` whole epochs, then a partial epoch in rank order (:func:`mixtures.sample.walk_partial`).
Candidate partitions hold consecutive ranges of the rank order, so the driver knows from the partitions' token
totals which partitions the partial epoch takes whole (their running total stays within the remainder), and only
the partitions where the walk turns greedy are probed, one after another, each probe a task that returns the walk's
state (:func:`mixtures.partitions.probe_partition`).  Then one task per partition writes its sampled rows
(:func:`mixtures.partitions.sample_partition`).  The result is the one :func:`mixtures.sample.sample_ranked` gives
over the whole entry; the driver holds a few numbers per group and partition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixtures.partitions import ALL, GroupSample, PartitionTask, probe_partition, sample_partition
from mixtures.sample import Walk, overshoot
from mixtures.select import EntryState
from mixtures.topics import topic_report
from pipelines.core.executor import Executor


@dataclass
class Group:
    """One group's plan: whole epochs, the remainder, the partitions the partial epoch takes whole (``whole``:
    the first ``whole`` partitions), the walk's start state per probed partition, and the overshoot document."""

    entry: int
    group: int
    docs: np.ndarray  # documents per partition
    tokens: np.ndarray  # tokens per partition
    target: float
    full: int = 0
    remainder: float = 0.0
    whole: int = 0
    starts: dict[int, Walk] = field(default_factory=dict)
    walk: Walk = field(default_factory=Walk)
    extra: tuple[int, int] | None = None  # (partition, position among the group's documents there)

    def plan(self) -> Group:
        available = int(self.tokens.sum())
        if self.target <= 0 or available <= 0:
            return self
        self.full = int(math.floor(self.target / available))
        self.remainder = self.target - self.full * available
        if self.remainder > 0:
            cum = np.cumsum(self.tokens)
            self.whole = int(np.searchsorted(cum, self.remainder, side="right"))
            self.walk = Walk(total=int(cum[self.whole - 1]) if self.whole else 0)
        return self

    def next_probe(self, after: int) -> int | None:
        """The next partition (from ``after``) the walk has to visit, None when it is over."""
        if self.remainder <= 0 or self.walk.done:
            return None
        nonempty = np.flatnonzero(self.docs[after:]) + after
        return int(nonempty[0]) if len(nonempty) else None

    @property
    def partial_docs(self) -> int:
        whole = int(self.docs[: self.whole].sum()) if self.remainder > 0 else 0
        return whole + self.walk.taken + (self.extra is not None)

    def request(self, p: int) -> GroupSample | None:
        partial = self.remainder > 0 and (p < self.whole or p in self.starts or (self.extra or (-1,))[0] == p)
        if not self.docs[p] or (not self.full and not partial):
            return None
        extra = self.extra[1] if self.extra is not None and self.extra[0] == p else None
        walk = None if p < self.whole else self.starts.get(p, Walk(done=True))
        return GroupSample(self.entry, self.group, self.full, partial, self.remainder, walk, extra)


def _groups(k: int, st: EntryState, target: float) -> list[Group]:
    """The entry's groups: one per topic with a target share when its topic rules apply, else the whole entry."""
    plan = st.topic_plan
    if plan is not None and plan.applied and st.has_topic:
        return [
            Group(k, t, *st.groups[t], f * target).plan()
            for t, f in sorted(plan.fractions.items())
            if f > 0 and t in st.groups and st.groups[t][0].sum()
        ]
    return [Group(k, ALL, *st.groups[ALL], target).plan()]


def _walk(ex: Executor, work: str, groups: list[Group], stage: str) -> None:
    """Probe the partitions where each group's partial epoch turns greedy, in rank order, until every walk ends
    (all groups' next probes in one round of tasks); then the closest overshoot document."""
    at = {id(g): g.next_probe(g.whole) for g in groups}
    while any(p is not None for p in at.values()):
        active = [g for g in groups if at[id(g)] is not None]
        by_part: dict[int, list[Group]] = {}
        for g in active:
            by_part.setdefault(at[id(g)], []).append(g)  # type: ignore[arg-type]
        tasks = [
            PartitionTask(work, p, tuple((g.entry, g.group, g.remainder, g.walk) for g in gs))
            for p, gs in sorted(by_part.items())
        ]
        walks = ex.map(probe_partition, tasks, desc=f"mixture {stage}: partial epochs")
        for t, ws in zip(tasks, walks, strict=True):
            for g, w in zip(by_part[t.partition], ws, strict=True):
                g.starts[t.partition] = g.walk
                g.walk = w
                at[id(g)] = g.next_probe(t.partition + 1)
    for g in groups:
        best = overshoot(g.walk, g.remainder) if g.remainder > 0 else None
        if best is not None:
            g.extra = (best >> 40, best & ((1 << 40) - 1))


def sample_entries(
    ex: Executor, work: str, stage: str, states: list[EntryState], eff: dict[str, float], budget: float
) -> tuple[list[dict[str, Any]], list[int]]:
    """Sample every entry (rows written per docs file under ``work``); (manifest entries, docs files touched)."""
    groups: dict[int, list[Group]] = {}
    for k, st in enumerate(states):
        target = eff.get(st.spec.name, 0.0) * budget
        if st.size:
            groups[k] = _groups(k, st, min(target, st.capacity))
    every = [g for gs in groups.values() for g in gs]
    _walk(ex, work, every, stage)
    partitions = len(next(iter(every)).docs) if every else 0
    tasks = [
        PartitionTask(work, p, tuple(r for g in every if (r := g.request(p)))) for p in range(partitions)
    ]
    done = ex.map(sample_partition, [t for t in tasks if t.requests], desc=f"mixture {stage}: sampling")
    touched = sorted({f for files, _ in done for f in files})
    realised: dict[int, dict[int, int]] = {}
    for _, by_entry in done:
        for k, by_topic in by_entry.items():
            mine = realised.setdefault(k, {})
            for t, n in by_topic.items():
                mine[t] = mine.get(t, 0) + n
    entries = [
        _manifest_entry(st, eff.get(st.spec.name, 0.0), budget, groups.get(k, []), realised.get(k, {}))
        for k, st in enumerate(states)
    ]
    return entries, touched


def _manifest_entry(
    st: EntryState, share: float, budget: float, groups: list[Group], realised: dict[int, int]
) -> dict[str, Any]:
    s = st.spec
    target = share * budget
    cap = st.capacity
    tokens = sum(realised.values())
    status = st.status if st.status != "ok" or target <= cap * (1 + 1e-9) else "short"
    docs = sum(g.full * int(g.docs.sum()) + g.partial_docs for g in groups)
    unique = sum(int(g.docs.sum()) if g.full else g.partial_docs for g in groups)
    return {
        "name": s.name,
        "from": s.origin,
        "where": s.where,
        "status": status,
        "note": st.note,
        "ranked_by": st.ranked_by,
        "top_fraction": s.top_fraction,
        "target_share": s.share,
        "effective_target_share": round(share, 6),
        "max_epochs": s.max_epochs,
        "candidate_documents": st.candidates,
        "contaminated_documents": st.contaminated,
        "available_documents": st.size,
        "available_tokens": st.available,
        "target_tokens": round(target),
        "realised_tokens": tokens,
        "shortfall_tokens": max(0, round(target - tokens)) if status == "short" else 0,
        "documents": docs,
        "unique_documents": unique,
        "epochs": round(tokens / st.available, 4) if st.available else 0.0,
        **topic_report(st.topic_plan, realised if st.has_topic else None),
    }
