"""fastText training from lines held in memory, shared by the wiki-reference, domain, topic and semantic-encoder
trainers: the temporary input file, one thread (the same model for the same seed), the retry at half the rate when
fastText diverges, product quantisation, and reading a retrained file back past the per-process model cache live
here once."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

#: fastText's default learning rates (``fasttext.FastText``): supervised and unsupervised
_DEFAULT_LR = {False: 0.1, True: 0.05}


def fit_fasttext(
    lines: Iterable[str],
    out_path: str | None = None,
    cutoff: int = 100_000,
    quantize: bool = False,
    unsupervised: bool = False,
    **params: Any,
) -> Any:
    """fastText on ``lines`` (``__label__<y> <text>`` lines, or plain text with ``unsupervised``) with one thread,
    saved to ``out_path`` when given.  ``quantize``: product-quantised ``.ftz`` (retrained on the same text, keeping
    the ``cutoff`` most useful words), a small fraction of the ``.bin`` size.  When fastText stops with "Encountered
    NaN" (a rate too high for the data) it retries at half the rate, three times at most."""
    import fasttext

    train = fasttext.train_unsupervised if unsupervised else fasttext.train_supervised
    if out_path:
        os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.writelines(lines)
        name = f.name
    try:
        lr = params.pop("lr", _DEFAULT_LR[unsupervised])
        for attempt in range(4):
            try:
                model = train(input=name, lr=lr / 2**attempt, thread=1, verbose=0, **params)
                break
            except RuntimeError as exc:
                if "NaN" not in str(exc) or attempt == 3:
                    raise
                log.warning("fastText diverged at lr %.3f; retrying at half the rate", lr / 2**attempt)
        if quantize:
            model.quantize(input=name, qnorm=True, retrain=True, cutoff=cutoff, thread=1, verbose=0)
    finally:
        os.unlink(name)
    if out_path:
        model.save_model(out_path)
    return model


def labelled_lines(examples: Iterable[tuple[str, str]], preprocess: Callable[[str], str]) -> list[str]:
    """fastText's supervised input: one ``__label__<label> <preprocessed text>`` line per (text, label)."""
    return [f"__label__{label} {preprocess(text)}\n" for text, label in examples]


def load_retrained(path: str) -> Any:
    """The model file just written at ``path``, read from disk (never an older one from the process cache)."""
    from filters import langid

    langid._MODELS.pop(path, None)
    return langid.load_fasttext(path)
