"""What a run would do, without doing it: ``winnow run --dry-run`` (the plan) and ``winnow steps`` (the catalogue).

Both read the recipe objects and the step dataclasses, so they can never drift from what a run does.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from pipelines.core.layout import SourceLayout, input_key
from pipelines.core.recipe import Recipe
from pipelines.core.steps import Step, build_step
from pipelines.sources.registry import SOURCES, load_config


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "<required>"


def settings(cls: type, configured: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A dataclass's settings: name, type, default, and the value the source's config gives it (if any)."""
    configured = configured or {}
    return [
        {
            "setting": f.name,
            "type": f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
            "default": _default(f),
            **({"config": configured[f.name]} if f.name in configured else {}),
        }
        for f in dataclasses.fields(cls)
        if f.name != "name"
    ]


def catalogue(sources: list[str] | None = None) -> list[dict[str, Any]]:
    """Every step of every source's recipe (in recipe order), with its settings from the dataclass."""
    rows = []
    for source in sources or SOURCES:
        module = importlib.import_module(f"pipelines.sources.{source}")
        config_steps = load_config(source).get("steps") or {}
        for name, cls in module.STEPS.items():
            section = dict(config_steps.get(name) or {})
            enabled = section.pop("enabled", True)
            rows.append(
                {
                    "source": source,
                    "step": name,
                    "class": f"{cls.__module__}.{cls.__qualname__}",
                    "kind": _kind(cls, {**section, "name": name}),
                    "enabled": enabled,
                    "doc": _summary(cls),
                    "settings": settings(cls, section),
                }
            )
    return rows


def _summary(cls: type) -> str:
    """First line of the class's own docstring (not the signature dataclasses writes when there is none)."""
    doc = (cls.__doc__ or "").strip()
    return "" if doc.startswith(f"{cls.__name__}(") else doc.split("\n")[0]


def _kind(cls: type[Step], settings: dict[str, Any]) -> str:
    """The kind with the config's settings (some steps' kind follows a setting, e.g. a rule in ``tag`` mode)."""
    if isinstance(cls.kind, str):
        return cls.kind
    try:
        return build_step(cls, settings, cls.__name__).kind
    except (TypeError, ValueError):
        return "depends on settings"


def format_catalogue(rows: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    source = None
    for r in rows:
        if r["source"] != source:
            source = r["source"]
            lines.append(
                f"{source}  (pipelines/sources/{source}.py, configs/{source}.yaml: steps.<step>.<setting>)"
            )
        off = "" if r["enabled"] else "  [off by default]"
        lines.append(f"  {r['step']:<16} {r['kind']:<9} {r['class']}{off}")
        if r["doc"]:
            lines.append(f"      {r['doc']}")
        for s in r["settings"]:
            cfg = f"   config: {s['config']!r}" if "config" in s and s["config"] != s["default"] else ""
            lines.append(f"      {s['setting']:<22} {s['type']:<26} = {s['default']!r}{cfg}")
    return "\n".join(lines)


def _describe(step: Step) -> str:
    changed = {k: v for k, v in step.config().items() if k != "name" and v != _default(_field(type(step), k))}
    extra = ", ".join(f"{k}={v!r}" for k, v in changed.items())
    return f"{step.name:<16} {step.kind:<9} {type(step).__name__}" + (f"  ({extra})" if extra else "")


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def describe_plan(recipe: Recipe, inputs: list[str], output: str) -> str:
    """The plan of ``winnow run``: inputs found (and how many are already done), reader, steps, corpus stages."""
    layout = SourceLayout(output, recipe.source)
    done = sum(1 for p in inputs if layout.is_done(input_key(p)))
    lines = [f"{recipe.source}: {len(inputs)} input(s), {done} already done, {len(inputs) - done} to process"]
    lines += [f"  input  {p}" for p in inputs[:10]]
    if len(inputs) > 10:
        lines.append(f"  ... and {len(inputs) - 10} more")
    lines.append(f"  reader {type(recipe.reader).__name__} (batch_size {recipe.reader.batch_size})")
    lines.append("  steps (in order; name, kind, class, settings that differ from the class defaults):")
    lines += [f"    {_describe(s)}" for s in recipe.steps]
    stages = [s.name for s in recipe.corpus_stages]
    lines.append(f"  corpus stages after the last input: {', '.join(stages) or 'none'}")
    lines.append(f"  output {layout.base}/{{docs,rejected,stats,_done}}/<key>.*, summary.json")
    problems = recipe.environment_problems()
    lines += [f"  NOT READY: {p}" for p in problems] or ["  environment: every step's checks pass"]
    lines.append("  (dry run: nothing was read or written)")
    return "\n".join(lines)
