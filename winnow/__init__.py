"""Winnow's Python API: compose and run a curation recipe from code.

The code lives in the repository's top-level packages (``pipelines``, ``filters``, ``dedup``, ``classifiers``,
``mixtures``); this package gathers what a user needs in one import::

    from winnow import Recipe, RowFilter, run_recipe
    from pipelines.readers.books import BooksReader
    from filters.gutenberg import StripGutenberg

    recipe = Recipe(source="books", reader=BooksReader(), steps=[StripGutenberg(name="strip_gutenberg")])
    result = run_recipe(recipe, "my-books/", "output", executor="local")

or takes a source's shipped recipe and config: ``build_recipe("commoncrawl", load_config("commoncrawl", "my.yaml"))``.
The README's "Python API" section has a complete example.
"""

from __future__ import annotations

from pipelines.core.recipe import CorpusStage, Reader, Recipe, Skip
from pipelines.core.steps import RowFilter, Step, StepResult, set_column, texts
from pipelines.plan import catalogue, describe_plan
from pipelines.runner import RunResult, run_recipe
from pipelines.sources.compose import assemble
from pipelines.sources.registry import SOURCES, build_recipe, load_config

__all__ = [
    "SOURCES",
    "CorpusStage",
    "Reader",
    "Recipe",
    "RowFilter",
    "RunResult",
    "Skip",
    "Step",
    "StepResult",
    "assemble",
    "build_recipe",
    "catalogue",
    "describe_plan",
    "load_config",
    "run_recipe",
    "set_column",
    "texts",
]
