"""Where work runs: Ray start-up (embedded, or joining ``RAY_ADDRESS`` with this repository as the job's
working_dir).  The one ``map(fn, items)`` executor of issue #13/#14 grows here; nothing else in Winnow starts Ray."""

from __future__ import annotations

import logging
import os

from pipelines.core.paths import REPO_ROOT

log = logging.getLogger(__name__)

RUNTIME_EXCLUDES = [".venv/", "output/", "models/", ".git/", "bench/generated/", ".cache/", "**/__pycache__/"]


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray embedded, or connect to ``address`` / ``RAY_ADDRESS`` and ship this repo as working_dir."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(
            address=address,
            runtime_env={"working_dir": REPO_ROOT, "excludes": RUNTIME_EXCLUDES},
            log_to_driver=True,
        )
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=True,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
