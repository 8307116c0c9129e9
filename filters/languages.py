"""Per-language pieces of the web heuristics: lid.176's language codes, a word tokenizer suited to each language, and
stop words.

Word tokenizers are datatrove's (``datatrove/assets/tokenizer_assignment.csv``: spaCy for most languages, spaCy +
jieba for Chinese, spaCy + SudachiPy for Japanese, PyThaiNLP for Thai, Kiwi for Korean, IndicNLP/Stanza for Indic
scripts...).  datatrove's lookup by a bare two-letter code picks the wrong row for some languages (``zh`` gets the
romanised-Chinese whitespace tokenizer, ``ms`` the Thai one, ``ar`` spaCy's multi-language one), so we look a
language up with its default script (``zh_Hani``, ``ar_Arab``), the row datatrove marks as the code's default.

Fallbacks, when the tokenizer's package is not installed or datatrove has no row for the language:

* languages written with spaces between words (Korean without ``kiwipiepy``, Vietnamese without ``pyvi``, Hindi
  without ``indic-nlp-library``, any lid.176 code datatrove does not list) get datatrove's ``WhitespaceTokenizer``
  (spaCy's multi-language rules), with one WARNING per language: whitespace words are still words there;
* languages written without spaces (:data:`UNSPACED`: Chinese, Japanese, Thai, Lao, Khmer, Burmese, Tibetan) never
  fall back to whitespace words (a whole paragraph would count as one word): the input fails with the pip command
  that installs the tokenizer (``pip install 'winnow[multilingual]'``), an environment error a rerun retries.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

#: the 176 labels of Meta's lid.176 (fastText) language-ID model: what ``lang`` can hold
LID176_LANGUAGES = frozenset(
    """af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da
    de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id ie
    ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr
    mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah
    sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu
    xal xmf yi yo yue zh""".split()
)
#: languages written without spaces between words: never judged by whitespace words
UNSPACED = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})
#: what to install for the tokenizers of the unspaced languages (the ``multilingual`` extra of pyproject.toml)
INSTALL_HINT = "pip install 'winnow[multilingual]' (jieba, sudachipy + sudachidict-core, pythainlp)"


def check_languages(languages: list[str], where: str) -> None:
    """Fail, naming the setting, on a code lid.176 never outputs (a typo such as ``jp`` would reject every page)."""
    unknown = sorted(set(languages) - LID176_LANGUAGES - {"all"})
    if unknown:
        raise ValueError(
            f"{where}: unknown language code(s) {unknown}: use lid.176's codes (ISO 639-1 where one exists: "
            f"ja, zh, de...) or `all`; known: {' '.join(sorted(LID176_LANGUAGES))}"
        )


@functools.lru_cache(maxsize=1)
def _default_rows() -> dict[str, tuple[str, str, str]]:
    """{language code: (datatrove tokenizer key with its default script, tokenizer class, its language argument)}
    from datatrove's assignment table."""
    from datatrove.utils._import_utils import ASSETS_PATH

    out: dict[str, tuple[str, str, str]] = {}
    with open(os.path.join(ASSETS_PATH, "tokenizer_assignment.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["type"] and r["default_script"] == "TRUE"]
    for row in rows:
        if row["code_1"] and row["default_code_1"] == "TRUE":
            out.setdefault(row["code_1"], (f"{row['code_1']}_{row['script']}", row["type"], row["tok_code"]))
        out.setdefault(row["code_3"], (f"{row['code_3']}_{row['script']}", row["type"], row["tok_code"]))
    for row in rows:  # a two-letter code no row marks as default (``no``: Norwegian): its first row
        if row["code_1"]:
            out.setdefault(row["code_1"], (f"{row['code_1']}_{row['script']}", row["type"], row["tok_code"]))
    return out


def tokenizer_key(language: str) -> str | None:
    """datatrove's tokenizer key for a lid.176 code (``zh`` -> ``zh_Hani``); None when datatrove has none."""
    row = _default_rows().get(language)
    return row[0] if row else None


def _datatrove_tokenizer(language: str) -> Any:
    """The tokenizer of the language's default-script row.  datatrove's own instance for the bare code when that is
    the same tokenizer (``en``: the rules then share one spaCy pipeline with any other datatrove code), else the
    one looked up with the script."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    row = _default_rows().get(language)
    if row is None:
        raise LookupError(f"datatrove has no word tokenizer for {language!r}")
    key, kind, arg = row
    try:
        bare = load_word_tokenizer(language)
    except (ValueError, ImportError):
        bare = None
    if bare is not None and type(bare).__name__ == kind and (getattr(bare, "language", None) or "") == arg:
        return bare
    return load_word_tokenizer(key)


def load_language_tokenizer(language: str) -> Any:
    """datatrove's word tokenizer for ``language``, with the fallbacks of the module docstring."""
    from datatrove.utils.word_tokenizers import WhitespaceTokenizer

    try:
        return _datatrove_tokenizer(language)
    except ImportError as exc:
        if language in UNSPACED:
            raise ImportError(
                f"no word tokenizer for {language!r} ({exc}); {language} is written without spaces, so its words "
                f"cannot be counted by whitespace: {INSTALL_HINT}"
            ) from exc
        log.warning(
            "%s; %s pages are split into words at spaces (spaCy's multi-language rules)", exc, language
        )
    except LookupError as exc:
        if language in UNSPACED:
            raise ImportError(f"{exc}; {language} is written without spaces: {INSTALL_HINT}") from exc
        log.warning("%s; its pages are split into words at spaces", exc)
    return WhitespaceTokenizer()


@functools.cache
def spacy_stop_words(language: str) -> tuple[str, ...] | None:
    """spaCy's stop-word list of ``language`` (shipped with spaCy, no download); None when spaCy has none.
    (Called after the language's word tokenizer is built, so spaCy is already imported without torch.)"""
    try:
        from spacy.util import get_lang_class

        words = get_lang_class(language).Defaults.stop_words
    except Exception:  # noqa: BLE001 - spaCy raises ImportError or its own error for a language it lacks
        return None
    return tuple(sorted(words)) or None
