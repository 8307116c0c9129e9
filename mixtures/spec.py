"""A training stage's mixture, read from ``mixtures/<stage>.yaml`` (or any YAML a user names).

The YAML is the schema users edit, so it is checked here once, with errors that name the key to fix, instead of
failing deep inside sampling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from mixtures.topics import TopicRule, TopicRuleError, parse_topic_rules
from pipelines.sources.registry import resolve_path

MIXTURE_DIR = os.path.dirname(os.path.abspath(__file__))
#: the benchmark hash sets the default YAMLs name
SHIPPED_DIR = os.path.join(MIXTURE_DIR, "benchmarks")
STAGES = ("core", "anneal", "long_context")
SHORTFALL_MODES = ("error", "scale", "take_available")
MISSING_MODES = ("renormalise", "error")
EMPTY_MODES = ("report", "error")
EXECUTORS = ("auto", "local", "process", "ray")


class MixtureError(ValueError):
    """A mixture that cannot be built as written; the message says what to change."""


class EmptyStage(MixtureError):
    """Curated documents exist but the stage's predicates select none of them (e.g. long_context on short docs).

    Reported as "empty", not as a failure, unless the mixture says ``on_empty: error`` or the caller is strict."""


@dataclass(frozen=True)
class SourceSpec:
    """One entry of a mixture: a slice of one curated source, its token share and epoch cap."""

    name: str
    share: float
    origin: str  # the curated source whose docs it reads (OUTPUT/<origin>/docs)
    max_epochs: float = 1.0
    where: str | None = None  # DuckDB predicate over the docs' columns (scores, n_tokens, meta...)
    # columns the origin may lack, with the SQL value to use then (c4_reason is absent when the c4 step drops)
    missing_columns: dict[str, str] = field(default_factory=dict)
    # keep only the best `top_fraction` of the selected docs, ranked by the first of `rank_by` the source has
    rank_by: tuple[str, ...] = ()
    top_fraction: float | None = None
    # per-topic share / max_share / weight inside the entry (mixtures/topics.py)
    topics: tuple[TopicRule, ...] = ()


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark to decontaminate against: an items file (JSONL/CSV) with ``fields``, or, without fields, the
    folder holding its hash set (``<name>.npy``, see ``mixtures.benchmarks``)."""

    name: str
    path: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecontamSpec:
    n: int = 13
    benchmarks: tuple[BenchmarkSpec, ...] = ()


@dataclass(frozen=True)
class MixtureSpec:
    stage: str
    sources: tuple[SourceSpec, ...]
    total_tokens: int | None  # None: "max", the largest budget the supply allows at the target shares
    seed: int = 0
    on_shortfall: str = "error"
    missing_sources: str = "renormalise"
    shard_max_tokens: int = 50_000_000
    tokenizer: str = "llama3"
    decontaminate: DecontamSpec | None = None
    path: str | None = None
    on_empty: str = "report"  # nothing selected: report "empty" and succeed | error
    executor: str = "auto"  # where the build's tasks run: auto | local | process | ray
    workers: int | None = None  # process pool size (None: every core)
    partitions: int | None = None  # candidate partitions (None: from the docs bytes); decides no output


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MixtureError(f"{what} must be a number, got {value!r}") from None


def parse_mixture(data: dict[str, Any], path: str | None = None) -> MixtureSpec:
    """Validate a mixture mapping (as read from YAML) into a :class:`MixtureSpec`."""
    where = path or "mixture"
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict) or not data["sources"]:
        raise MixtureError(f"{where}: needs a `sources:` mapping of name -> {{share, max_epochs, where}}")
    stage = str(data.get("stage") or (os.path.splitext(os.path.basename(path))[0] if path else "custom"))
    sources = []
    for name, entry in data["sources"].items():
        entry = entry if isinstance(entry, dict) else {"share": entry}
        if "share" not in entry:
            raise MixtureError(f"{where}: source {name!r} has no `share` (a fraction of the stage's tokens)")
        share = _number(entry["share"], f"{where}: sources.{name}.share")
        epochs = _number(entry.get("max_epochs", 1.0), f"{where}: sources.{name}.max_epochs")
        if share < 0 or epochs <= 0:
            raise MixtureError(f"{where}: sources.{name}: share must be >= 0 and max_epochs > 0")
        missing = {
            str(k): "NULL" if v is None else str(v) for k, v in (entry.get("missing_columns") or {}).items()
        }
        rank_by = entry.get("rank_by") or ()
        rank_by = (rank_by,) if isinstance(rank_by, str) else tuple(str(c) for c in rank_by)
        top = entry.get("top_fraction")
        top = None if top is None else _number(top, f"{where}: sources.{name}.top_fraction")
        if top is not None and (not rank_by or not 0 < top <= 1):
            raise MixtureError(f"{where}: sources.{name}: top_fraction needs rank_by and a value in (0, 1]")
        try:
            topics = parse_topic_rules(entry.get("topics"), f"{where}: sources.{name}")
        except TopicRuleError as exc:
            raise MixtureError(str(exc)) from None
        sources.append(
            SourceSpec(
                name=str(name),
                share=share,
                origin=str(entry.get("from", name)),
                max_epochs=epochs,
                where=entry.get("where") or None,
                missing_columns=missing,
                rank_by=rank_by,
                top_fraction=top,
                topics=topics,
            )
        )
    total = sum(s.share for s in sources)
    if abs(total - 1.0) > 1e-6:
        raise MixtureError(
            f"{where}: source shares sum to {total:.6f}, not 1 "
            f"({', '.join(f'{s.name}={s.share}' for s in sources)})"
        )
    budget = data.get("total_tokens", "max")
    total_tokens = None if budget in (None, "max") else int(_number(budget, f"{where}: total_tokens"))
    on_shortfall = data.get("on_shortfall", "error")
    if on_shortfall not in SHORTFALL_MODES:
        raise MixtureError(f"{where}: on_shortfall must be one of {SHORTFALL_MODES}, got {on_shortfall!r}")
    missing_sources = data.get("missing_sources", "renormalise")
    if missing_sources not in MISSING_MODES:
        raise MixtureError(
            f"{where}: missing_sources must be one of {MISSING_MODES}, got {missing_sources!r}"
        )
    on_empty = data.get("on_empty", "report")
    if on_empty not in EMPTY_MODES:
        raise MixtureError(f"{where}: on_empty must be one of {EMPTY_MODES}, got {on_empty!r}")
    decontam = _decontam(data["decontaminate"], where) if data.get("decontaminate") else None
    executor = str(data.get("executor", "auto"))
    if executor not in EXECUTORS:
        raise MixtureError(f"{where}: executor must be one of {EXECUTORS}, got {executor!r}")
    workers = data.get("workers")
    workers = None if workers is None else int(_number(workers, f"{where}: workers"))
    partitions = data.get("partitions")
    partitions = None if partitions is None else int(_number(partitions, f"{where}: partitions"))
    if partitions is not None and not 1 <= partitions <= 65536:
        raise MixtureError(f"{where}: partitions must be between 1 and 65536, got {partitions}")
    return MixtureSpec(
        stage=stage,
        sources=tuple(sources),
        total_tokens=total_tokens,
        seed=int(data.get("seed", 0)),
        on_shortfall=on_shortfall,
        missing_sources=missing_sources,
        shard_max_tokens=int(_number(data.get("shard_max_tokens", 50_000_000), "shard_max_tokens")),
        tokenizer=str(data.get("tokenizer", "llama3")),
        decontaminate=decontam,
        path=path,
        on_empty=on_empty,
        executor=executor,
        workers=workers,
        partitions=partitions,
    )


def available(folders: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Benchmark hash sets in ``folders`` then the shipped folder: name -> folder (the first folder wins)."""
    found: dict[str, str] = {}
    for folder in [*folders, SHIPPED_DIR]:
        if os.path.isdir(folder):
            for entry in sorted(os.listdir(folder)):
                if entry.endswith(".json") and os.path.exists(os.path.join(folder, entry[:-5] + ".npy")):
                    found.setdefault(entry[:-5], folder)
    return found


def _decontam(d: Any, where: str) -> DecontamSpec:
    """``decontaminate:``: benchmark names (hash sets in ``benchmark_dirs`` or shipped), or {name, path, fields}."""
    if not isinstance(d, dict):
        raise MixtureError(f"{where}: decontaminate must be a mapping with n and benchmarks")
    dirs = [resolve_path(str(p)) for p in d.get("benchmark_dirs") or []]
    found = available(dirs)
    benches = []
    for b in d.get("benchmarks") or []:
        if isinstance(b, str):
            b = {"name": b}
        if not isinstance(b, dict) or not b.get("name"):
            raise MixtureError(
                f"{where}: a decontaminate.benchmarks entry is a name or {{name, path, fields}}"
            )
        name = str(b["name"])
        if b.get("path") or b.get("fields"):
            if not b.get("path") or not b.get("fields"):
                raise MixtureError(f"{where}: benchmark {name}: an items file needs both path and fields")
            benches.append(
                BenchmarkSpec(name, resolve_path(str(b["path"])), tuple(str(f) for f in b["fields"]))
            )
        elif b.get("dir"):
            benches.append(BenchmarkSpec(name, resolve_path(str(b["dir"]))))
        elif name in found:
            benches.append(BenchmarkSpec(name, found[name]))
        else:
            raise MixtureError(
                f"{where}: benchmark {name!r} is not a known hash set (known: {', '.join(found) or 'none'}); "
                f"create it with `winnow benchmarks add {name} --path ITEMS.jsonl --fields F1,F2 --dir DIR` and "
                "list DIR under decontaminate.benchmark_dirs, or give {name, path, fields}"
            )
    return DecontamSpec(n=int(d.get("n", 13)), benchmarks=tuple(benches))


def mixture_path(stage: str | None = None, path: str | None = None) -> str:
    """The YAML to read: ``path`` when given, else the shipped ``mixtures/<stage>.yaml``."""
    if path:
        if not os.path.exists(path):
            raise MixtureError(f"MIXTURE {path} does not exist (copy mixtures/core.yaml and edit it)")
        return path
    candidate = os.path.join(MIXTURE_DIR, f"{stage}.yaml")
    if not stage or not os.path.exists(candidate):
        known = sorted(n[:-5] for n in os.listdir(MIXTURE_DIR) if n.endswith(".yaml"))
        raise MixtureError(
            f"unknown stage {stage!r}: give STAGE= one of {', '.join(known)} or MIXTURE=<yaml>"
        )
    return candidate


def load_mixture(stage: str | None = None, path: str | None = None) -> MixtureSpec:
    p = mixture_path(stage, path)
    with open(p, encoding="utf-8") as f:
        return parse_mixture(yaml.safe_load(f) or {}, p)
