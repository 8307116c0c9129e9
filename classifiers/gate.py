"""A model below its quality bar never silently filters.

A filter step that depends on a model may say ``enabled: auto`` in its config: it is switched on when the model
its score step loads has a ``quality.json`` (written by ``winnow models train``) whose held-out AUC meets the
model's bar, and switched off otherwise, with a WARNING that says why.  The score step still runs, so the column
is written and a cut can be chosen later in DuckDB.  ``enabled: true`` forces a filter on whatever the measurement.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

from classifiers.evaluate import BARS, QUALITY_FILE
from classifiers.steps import absolute_path, locate_model

log = logging.getLogger(__name__)

#: filter step -> (score step it reads, model kind, config key of the score step's model location)
MODEL_FILTERS = {
    "ppl_filter": ("perplexity", "perplexity", "model_dir"),
    "wikiref_filter": ("wikiref", "wikiref", "model_path"),
    "quality_filter": ("roberta", "roberta", "model_dir"),
}


def model_quality(model: str, location: str) -> dict[str, Any] | None:
    """The ``quality.json`` recorded next to a model (its folder, or the folder of a model file), if any."""
    folder = location if os.path.isdir(location) else os.path.dirname(location)
    path = os.path.join(folder, QUALITY_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def meets_bar(model: str, location: str) -> tuple[bool, str]:
    """(passes, why) for the model at ``location``."""
    record = model_quality(model, location)
    if record is None:
        return False, f"{location} has no measured quality ({QUALITY_FILE}; `winnow models train` writes it)"
    auc = float(record["heldout"]["auc"])
    bar = BARS[model]
    if auc >= bar:
        return True, f"held-out AUC {auc:.3f} >= bar {bar:.2f}"
    return False, f"held-out AUC {auc:.3f} is below its bar {bar:.2f}"


def gate_model_filters(config: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Resolve ``enabled: auto`` on the model filters of ``config`` (a copy is returned)."""
    config = copy.deepcopy(config)
    steps = config.get("steps") or {}
    for filt, (score_step, model, key) in MODEL_FILTERS.items():
        section = steps.get(filt)
        if not isinstance(section, dict) or section.get("enabled", True) != "auto":
            continue
        score = steps.get(score_step) or {}
        if not score.get("enabled", True):
            section["enabled"] = False
            continue
        location = locate_model(absolute_path(score.get(key)), model)
        ok, why = meets_bar(model, location)
        section["enabled"] = ok
        if ok:
            log.info("%s %s is on: %s model %s", source, filt, model, why)
        else:
            log.warning(
                "%s %s stays off: the %s model %s; its scores are still written. Retrain it (make models) or "
                "set steps.%s.enabled: true to filter anyway",
                source,
                filt,
                model,
                why,
                filt,
            )
    return config
