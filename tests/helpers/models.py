"""Train one model the way ``winnow models train --only <model>`` does, on the small quality corpus of the fixtures."""

from __future__ import annotations

import os
from typing import Any

from tests.helpers.paths import FIXTURES

QUALITY = os.path.join(FIXTURES, "quality")


def train_on_quality_fixtures(models_dir: str, model: str) -> dict[str, Any]:
    """``model`` trained from ``tests/fixtures/quality`` (reference.jsonl vs web.jsonl) into ``models_dir``; its
    quality record."""
    from classifiers.train import TrainSettings, train_all

    settings = TrainSettings(
        models_dir=models_dir,
        reference=[os.path.join(QUALITY, "reference.jsonl")],
        web=[os.path.join(QUALITY, "web.jsonl")],
        only=[model],
    )
    return train_all(settings)[model]
