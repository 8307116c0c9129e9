"""Helpers that turn a source's config into a :class:`Recipe` (shared by every ``pipelines/sources/<source>.py``).

Steps and corpus stages are declared the same way: the recipe module names them in order (``STEPS``,
``CORPUS_STAGES``: name -> class), the config holds each one's settings under that name (``steps:``,
``corpus_stages:``), ``enabled: false`` leaves one out.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.recipe import Reader, Recipe
from pipelines.core.steps import Step, build_step
from pipelines.sources.registry import deep_merge

log = logging.getLogger(__name__)


def upgrade_config(
    source: str,
    config: dict[str, Any],
    stages: dict[str, type[CorpusStage]],
    renamed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``config`` with the corpus-stage sections of the old shape (top-level ``minhash:``, ``line_dedup:``,
    ``book_dedup:``, ``exact_dedup:``...) moved under ``corpus_stages:``, each with a warning that says where.

    ``renamed`` maps an old key to its stage's name where they differ (GitHub's ``exact_dedup`` -> ``exact_md5``).
    An old section wins over the new one's keys (it was the user's edit)."""
    old = {name: name for name in stages} | dict(renamed or {})
    moved = {key: name for key, name in old.items() if isinstance(config.get(key), dict)}
    if not moved:
        return config
    config = dict(config)
    sections = dict(config.get("corpus_stages") or {})
    for key, name in moved.items():
        log.warning(
            "%s config: the top-level `%s:` section is deprecated; it now lives under `corpus_stages: {%s: ...}` "
            "(moved there for this run; update your config)",
            source,
            key,
            name,
        )
        sections[name] = deep_merge(sections.get(name) or {}, config.pop(key))
    config["corpus_stages"] = sections
    return config


def build_stages(
    source: str, stages: dict[str, type[CorpusStage]], config: dict[str, Any]
) -> list[CorpusStage]:
    """The enabled corpus stages, in the order of ``stages``, from ``config['corpus_stages']``."""
    settings = config.get("corpus_stages") or {}
    unknown = sorted(set(settings) - set(stages))
    if unknown:
        raise ValueError(
            f"{source} config: unknown corpus stage(s) {unknown}; this recipe has {list(stages)}"
        )
    built: list[CorpusStage] = []
    for name, cls in stages.items():
        section = dict(settings.get(name) or {})
        if not section.pop("enabled", True):
            continue
        try:
            built.append(cls.from_config(name, section))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}.corpus_stages.{name}: {exc}") from exc
    return built


def assemble(
    source: str,
    reader_cls: type[Reader],
    steps: dict[str, type[Step]],
    config: dict[str, Any],
    stages: dict[str, type[CorpusStage]] | None = None,
    renamed_stages: dict[str, str] | None = None,
) -> Recipe:
    """Build the reader, the steps named in ``steps`` and the corpus stages named in ``stages`` (in that order) from
    ``config``.

    Each step's section in ``config['steps']`` holds its settings, each stage's in ``config['corpus_stages']``;
    ``enabled: false`` leaves one out.
    """
    stages = stages or {}
    config = upgrade_config(source, config, stages, renamed_stages)
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
    corpus = build_stages(source, stages, config)
    recipe = Recipe(source=source, reader=reader, steps=built, corpus_stages=corpus)
    recipe.validate()
    return recipe
