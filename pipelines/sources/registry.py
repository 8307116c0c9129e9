"""Per-source YAML configs: ``pipelines/sources/configs/<source>.yaml`` is the default; CONFIG= names an edited copy.

A user's copy may hold only what it changes: it is merged over the default, key by key.
"""

from __future__ import annotations

import copy
import importlib
import os
from typing import Any

import yaml

from pipelines.core.paths import REPO_ROOT, resolve_path  # noqa: F401 - re-exported for the CLI

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
SOURCES = ("commoncrawl", "github", "books", "arxiv", "stackexchange", "wikipedia")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(source: str, path: str | None = None) -> dict[str, Any]:
    default_path = os.path.join(CONFIG_DIR, f"{source}.yaml")
    if not os.path.exists(default_path):
        raise ValueError(f"unknown source {source!r}: no {default_path}; known: {', '.join(available_sources())}")
    with open(default_path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"CONFIG {path} does not exist (copy {default_path} and edit it)")
        with open(path, encoding="utf-8") as f:
            config = deep_merge(config, yaml.safe_load(f) or {})
    return config


def available_sources() -> list[str]:
    return sorted(n[:-5] for n in os.listdir(CONFIG_DIR) if n.endswith(".yaml"))


def build_recipe(source: str, config: dict[str, Any]):
    """Import ``pipelines.<source>`` and call its ``build_recipe(config)``."""
    module = importlib.import_module(f"pipelines.sources.{source}")
    return module.build_recipe(config)
