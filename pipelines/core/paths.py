"""Where relative paths in configs point: the working directory first, else the repository (or installed package)."""

from __future__ import annotations

import os

#: the folder holding ``pipelines/`` (the repository root in a clone, site-packages in an installed wheel)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve_path(path: str) -> str:
    """Relative paths in configs are relative to the working directory, else to the repository."""
    if os.path.isabs(path) or os.path.exists(path) or any(c in path for c in "*?["):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    return candidate if os.path.exists(candidate) else path
