"""Helpers that turn a source's config into a :class:`Recipe` (shared by every ``pipelines/sources/<source>.py``)."""

from __future__ import annotations

from typing import Any

from pipelines.core.recipe import CorpusStage, Reader, Recipe
from pipelines.core.steps import Step, build_step


def assemble(
    source: str,
    reader_cls: type[Reader],
    steps: dict[str, type[Step]],
    config: dict[str, Any],
    corpus_stages: list[CorpusStage] | None = None,
) -> Recipe:
    """Build the reader and the steps named in ``steps`` (in that order) from ``config``.

    Each step's section in ``config['steps']`` holds its settings; ``enabled: false`` leaves it out.
    """
    settings = config.get("steps") or {}
    unknown = sorted(set(settings) - set(steps))
    if unknown:
        raise ValueError(f"{source} config: unknown step(s) {unknown}; this recipe has {list(steps)}")
    reader = build_step(reader_cls, config.get("reader"), f"{source}.reader")  # type: ignore[arg-type]
    built: list[Step] = []
    for name, cls in steps.items():
        section = dict(settings.get(name) or {})
        if not section.pop("enabled", True):
            continue
        section.setdefault("name", name)
        built.append(build_step(cls, section, f"{source}.steps.{name}"))
    recipe = Recipe(source=source, reader=reader, steps=built, corpus_stages=list(corpus_stages or []))
    recipe.validate()
    return recipe
