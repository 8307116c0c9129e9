"""The house in floors: ``pipelines.core`` imports no other Winnow package; readers and steps (``filters``,
``dedup``, ``classifiers``, ``pipelines.readers``) import only the core and each other; the source registry
(``pipelines.sources``) sits on them, the mixture build (``mixtures``) above; runner, CLI, cron, query and the
report (``pipelines.report``) on top.  No import cycles between modules, lazy (function-level) imports included."""

from __future__ import annotations

import ast
import os

from tests.helpers.paths import REPO

PACKAGES = ("pipelines", "filters", "dedup", "classifiers", "mixtures", "winnow")
FLOORS = (
    ("core", ("pipelines.core",)),
    ("steps", ("pipelines.readers", "filters", "dedup", "classifiers")),
    ("sources", ("pipelines.sources",)),
    ("mixtures", ("mixtures",)),
)


def floor(module: str) -> int:
    for i, (_, prefixes) in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return len(FLOORS)  # the top: runner, cli, cron, query, report, the winnow API


def modules() -> dict[str, str]:
    out = {}
    for pkg in PACKAGES:
        for d, _dirs, files in os.walk(os.path.join(REPO, pkg)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(d, f)
                    name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    out[name.removesuffix(".__init__")] = path
    return out


def imports(path: str, known: set[str]) -> set[str]:
    """Winnow modules imported anywhere in the file (``from a.b import c`` counts a.b.c when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            if n.split(".")[0] in PACKAGES:
                while n and n not in known:
                    n = n.rpartition(".")[0]
                if n and "." in n or n in known:
                    found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {m: imports(p, known) - {m} for m, p in mods.items()}
    # a package's __init__ is imported with its modules; it is not an edge of its own
    return {m: {t for t in ts if t not in PACKAGES} for m, ts in edges.items()}


def test_no_import_goes_up_a_floor():
    upward = [
        f"{m} (floor {FLOORS[floor(m)][0] if floor(m) < len(FLOORS) else 'top'}) imports {t}"
        for m, ts in sorted(graph().items())
        for t in sorted(ts)
        if floor(t) > floor(m)
    ]
    assert not upward, "imports that go up a floor:\n" + "\n".join(upward)


def test_core_imports_no_other_winnow_package():
    outside = [f"{m} imports {t}" for m, ts in graph().items() if floor(m) == 0 for t in ts if floor(t) != 0]
    assert not outside, "\n".join(outside)


def test_no_import_cycles():
    g = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_real_edges():
    """The checker itself: it finds the runner's import of the core and a step's import of the core."""
    g = graph()
    assert "pipelines.core.process" in g["pipelines.runner"]
    assert "pipelines.core.steps" in g["filters.extract"]
    assert floor("pipelines.core.layout") == 0 and floor("pipelines.runner") == len(FLOORS)
