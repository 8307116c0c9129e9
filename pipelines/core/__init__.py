"""The contract layer: schema, step contract, recipe, per-input processing, layout, storage and locks.

Nothing in ``pipelines.core`` imports any other Winnow package (``tests/test_floors.py`` keeps it so).
"""
