"""A Winnow driver for the fault tests: imports and builds the recipe, prints READY, then runs (so a test can kill it
at a chosen point of the run itself rather than during start-up).

usage: python ops_driver.py SOURCE CONFIG INPUT OUTPUT [local|ray]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main() -> int:
    source, config_path, inputs, output = sys.argv[1:5]
    executor = sys.argv[5] if len(sys.argv) > 5 else "local"
    from pipelines.runner import run_recipe
    from pipelines.sources.registry import build_recipe, load_config

    recipe = build_recipe(source, load_config(source, config_path))
    print("READY", flush=True)
    result = run_recipe(recipe, inputs, output, executor=executor, progress=False)
    print("DONE", result.processed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
