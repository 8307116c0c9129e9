"""datatrove's word tokenizer, shared and cached: one spaCy tokenization per document for all the Gopher/FineWeb rules.

Gopher repetition, Gopher quality and FineWeb each split the same text with spaCy; they accept a ``WordTokenizer``
object as ``language``, and the heuristics hand them :func:`shared_word_tokenizer`, which remembers the last documents
it split and calls spaCy's tokenizer without the pipeline and memory zone around it (the same tokens, ~1.8x faster;
tests/pipelines/sources/test_commoncrawl.py checks token lists and filter decisions against datatrove's).  It reaches
into datatrove's ``SpaCyTokenizer`` internals, so on a datatrove version it was not tested on it is skipped: the rules
get datatrove's own tokenizer.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

from filters.patches import version_tested

TESTED_VERSIONS = ("0.10.1",)

_SHARED_TOKENIZERS: dict[str, Any] = {}


def import_spacy_without_torch() -> None:
    """Import spaCy without the torch import its thinc backend attempts (1.4 s per process here, a third of a worker's
    warm-up): only spaCy's tokenizer is used, which never touches torch.  A process that has already imported torch
    (a model step) keeps it; torch stays importable afterwards (thinc just records it as absent)."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment] - `import torch` raises ImportError while this is set
    try:
        import spacy  # noqa: F401
    except ImportError:
        pass  # datatrove reports a missing spaCy itself, with its install hint
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


def shared_word_tokenizer(language: str = "en", cache_size: int = 1024) -> Any:
    """A process-wide caching wrapper around datatrove's word tokenizer for ``language`` (datatrove's own one on an
    untested datatrove version); filters/languages.py picks the tokenizer and its fallbacks."""
    if language not in _SHARED_TOKENIZERS:
        import_spacy_without_torch()
        from datatrove.utils.word_tokenizers import WordTokenizer

        from filters.languages import load_language_tokenizer

        if not version_tested("datatrove", TESTED_VERSIONS, "shared word tokenizer (filters/patches)"):
            return load_language_tokenizer(language)

        class CachedWordTokenizer(WordTokenizer):
            """Memoises ``word_tokenize`` (LRU over whole texts); other calls go straight to the wrapped tokenizer."""

            def __init__(self, inner: WordTokenizer, size: int):
                super().__init__(inner.language)
                self.inner, self.size = inner, size
                self.max_vocab = 2_000_000
                self.cache: OrderedDict[str, list[str]] = OrderedDict()
                self.hits = self.misses = 0

            def clear(self) -> None:
                self.cache.clear()

            def word_tokenize(self, text: str) -> list[str]:
                words = self.cache.get(text)
                if words is not None:
                    self.hits += 1
                    self.cache.move_to_end(text)
                    return words
                self.misses += 1
                words = self._tokenize(text)
                self.cache[text] = words
                if len(self.cache) > self.size:
                    self.cache.popitem(last=False)
                return words

            def _tokenize(self, text: str) -> list[str]:
                """spaCy's Tokenizer called directly: the same tokens as datatrove's SpaCyTokenizer (which runs the
                whole pipeline, sentencizer included, inside a memory_zone that throws away every new lexeme, so
                spaCy's lexeme cache never warms up).  The vocabulary is rebuilt past ``max_vocab`` to bound memory."""
                nlp = self._nlp()
                if nlp is None:
                    return self.inner.word_tokenize(text)  # NLTK/Stanza/Japanese: datatrove's own path
                try:
                    tokens = [t.text for t in nlp.tokenizer(text)]
                except Exception:  # noqa: BLE001 - datatrove's own fallbacks (e.g. the IS_ALPHA string)
                    return self.inner.word_tokenize(text)
                return [t.strip() for t in tokens if t.strip()]

            def _nlp(self):
                """The spaCy pipeline (tokenizer + sentencizer) when it is datatrove's plain SpaCy one, else None."""
                inner = self.inner
                if not hasattr(inner, "_do_tokenize") or inner.language == "ja":
                    return None
                if len(inner.tokenizer.vocab) > self.max_vocab:
                    inner._tokenizer = None
                return inner.tokenizer

            def sent_tokenize(self, text: str) -> list[str]:
                return self.inner.sent_tokenize(text)

            def span_tokenize(self, text: str) -> list[tuple[int, int]]:
                """C4 counts sentences per line through this; same spans as datatrove's, without the memory zone."""
                nlp = self._nlp()
                if nlp is None or "IS_ALPHA" in text:
                    return self.inner.span_tokenize(text)
                nlp.max_length = max(nlp.max_length, len(text) + 10)
                return [
                    (s.start_char, s.end_char) for s in nlp(text, disable=["parser", "tagger", "ner"]).sents
                ]

        _SHARED_TOKENIZERS[language] = CachedWordTokenizer(load_language_tokenizer(language), cache_size)
    return _SHARED_TOKENIZERS[language]


def clear_shared_tokenizer(language: str | None = None) -> None:
    """Forget the cached splits of ``language`` (None: of every language); per input, so that an input never
    reuses another input's splits."""
    for lang in [language] if language else list(_SHARED_TOKENIZERS):
        if lang in _SHARED_TOKENIZERS:
            _SHARED_TOKENIZERS[lang].clear()
