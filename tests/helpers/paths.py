"""Paths every test uses: the repository, its fixtures, and ../shared/corpus (skipped with a message when absent)."""

from __future__ import annotations

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
SHARED = os.path.abspath(os.environ.get("WINNOW_SHARED", os.path.join(REPO, "..", "shared")))
CORPUS = os.path.join(SHARED, "corpus")


def corpus_path(*parts: str) -> str:
    """A path under ../shared/corpus, or skip the test with a clear message when it is absent."""
    path = os.path.join(CORPUS, *parts)
    if not os.path.exists(path):
        pytest.skip(f"../shared/corpus not found ({path}): integration test skipped; set WINNOW_SHARED to its parent")
    return path
