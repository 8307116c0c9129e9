"""Matplotlib figures for ``make report``; every function writes one PNG and returns its file name."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; chosen at call time, not import time
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, folder: str, name: str) -> str:
    fig.tight_layout()
    fig.savefig(os.path.join(folder, name), dpi=90)
    _plt().close(fig)
    return name


def funnel(folder: str, source: str, stages: list[tuple[str, int]]) -> str:
    """Horizontal bars: documents read, then left after each step."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(stages) + 1.2))
    labels = [s for s, _ in stages][::-1]
    values = [v for _, v in stages][::-1]
    ax.barh(labels, values, color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("documents")
    ax.set_title(f"{source}: read → kept")
    ax.set_xlim(0, max(values + [1]) * 1.15)
    return _save(fig, folder, f"funnel_{source}.png")


def histogram(folder: str, column: str, per_source: dict[str, np.ndarray]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    finite = {k: v[np.isfinite(v)] for k, v in per_source.items()}
    allv = np.concatenate([v for v in finite.values() if len(v)] or [np.zeros(1)])
    lo, hi = float(np.percentile(allv, 0.5)), float(np.percentile(allv, 99.5))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
    for name, v in sorted(finite.items()):
        if len(v):
            ax.hist(np.clip(v, lo, hi), bins=bins, alpha=0.55, label=f"{name} (n={len(v):,})")
    ax.set_xlabel(column)
    ax.set_ylabel("documents")
    ax.set_title(f"{column} (kept documents)")
    ax.legend(fontsize=8)
    return _save(fig, folder, f"hist_{column}.png")


def cluster_sizes(folder: str, name: str, sizes: np.ndarray) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    top = int(sizes.max()) if len(sizes) else 1
    ax.hist(sizes, bins=np.arange(1, top + 2) - 0.5 if top <= 60 else 50, log=True, color="#c44e52")
    ax.set_xlabel("documents per duplicate cluster")
    ax.set_ylabel("clusters")
    ax.set_title(f"{name}: {len(sizes):,} clusters")
    return _save(fig, folder, f"dedup_{name.replace('/', '_')}.png")


def shares(folder: str, stage: str, names: list[str], target: list[float], realised: list[float]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, target, 0.4, label="target")
    ax.bar(x + 0.2, realised, 0.4, label="realised")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("share of tokens")
    ax.set_title(f"stage {stage}: target vs realised")
    ax.legend()
    return _save(fig, folder, f"shares_{stage}.png")


def topic_bars(
    folder: str, name: str, title: str, rows: dict[str, dict[str, float]], order: list[str]
) -> str:
    """One horizontal bar per row (a source, or a stage's entries), split by topic share; a topic keeps its
    colour (its place in ``order``, the taxonomy) in every plot."""
    plt = _plt()
    present = {t for shares in rows.values() for t in shares}
    topics = [t for t in order if t in present] + sorted(present - set(order))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 2.2))
    labels = list(rows)[::-1]
    left = np.zeros(len(labels))
    cmap = plt.get_cmap("tab20")
    for k, topic in enumerate(topics):
        values = np.array([rows[r].get(topic, 0.0) for r in labels])
        colour = cmap((order.index(topic) if topic in order else len(order) + k) % 20)
        ax.barh(labels, values, left=left, color=colour, label=topic)
        left += values
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.3 / max(1, len(rows))))
    return _save(fig, folder, f"topics_{name}.png")
