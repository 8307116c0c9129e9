"""The product never reaches outside the repository: no file of the product's packages, their configs and shipped
artefacts' manifests, the Makefile, pyproject or docs names the development corpus folder, and the default mixtures
build their decontamination index from shipped files."""

from __future__ import annotations

import os
import re

from tests.helpers.paths import REPO

# the paths this suite guards (issue: self-contained defaults); other packages may add themselves here
GUARDED = ["pipelines", "filters", "dedup", "classifiers", "mixtures", "winnow", "Makefile", "pyproject.toml", "docs"]
#: trained models and hash arrays: binary, not text
BINARY = (".npy", ".pyc", ".ftz", ".bin", ".model", ".safetensors", ".arpa", ".gz", ".bz2", ".pt")
#: the development corpus beside the repository, and any absolute path into the folder that holds the repository
OUTSIDE = re.compile(r"\.\./shared|shared/corpus|" + re.escape(os.path.dirname(REPO) + os.sep))


def _files() -> list[str]:
    out = []
    for rel in GUARDED:
        path = os.path.join(REPO, rel)
        if os.path.isfile(path):
            out.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            out += [os.path.join(root, f) for f in files if not f.endswith(BINARY)]
    return out


def test_no_guarded_file_names_a_folder_outside_the_repository():
    files = _files()
    assert len(files) > 20 and any(f.endswith("MANIFEST.md") for f in files)
    hits = [
        f"{os.path.relpath(f, REPO)}:{i}: {line.strip()}"
        for f in files
        for i, line in enumerate(open(f, encoding="utf-8", errors="replace"), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_default_mixtures_resolve_every_benchmark_inside_the_repository():
    from mixtures.spec import load_mixture

    for stage in ("core", "anneal", "long_context"):
        spec = load_mixture(stage).decontaminate
        assert spec is not None and len(spec.benchmarks) == 4
        for b in spec.benchmarks:
            path = os.path.realpath(os.path.join(b.path, f"{b.name}.npy"))
            assert path.startswith(os.path.realpath(REPO) + os.sep) and os.path.getsize(path) > 10_000
