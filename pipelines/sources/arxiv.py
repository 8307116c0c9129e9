"""arXiv recipe (LLaMA-1): paper sources → each main file with inputs resolved → LaTeX cleanup.

The reader rejects a paper whose ``\\input`` tree passes its count or size cap (``arxiv:inline_limit``).  The cleanup
is one transform (``filters.latex.CleanLatex``): comments, user macros inlined, preamble before the first sectioning
command, appendices (unless ``keep_appendix``, RedPajama v1 cuts them) and the bibliography dropped.  A paper whose
macros never stop expanding is rejected (``latex:macro_expansion_limit``), one without any sectioning command too
(``latex:no_section``).
"""

from __future__ import annotations

from typing import Any

from filters.latex import CleanLatex
from pipelines.core.corpus_stage import CorpusStage
from pipelines.core.recipe import Recipe
from pipelines.readers.arxiv import ArxivReader
from pipelines.sources.compose import assemble

STEPS = {
    "clean_latex": CleanLatex,
}

#: no corpus stage for this source (the shape is that of STEPS; see commoncrawl.py)
CORPUS_STAGES: dict[str, type[CorpusStage]] = {}


def build_recipe(config: dict[str, Any]) -> Recipe:
    return assemble("arxiv", ArxivReader, STEPS, config, CORPUS_STAGES)
