"""LID evaluation on a Tatoeba TSV (given by the caller): Winnow's batched lid.176 step vs datatrove's filter.

Both read the same lid.176.ftz (datatrove's ``FT176LID`` is pointed at it, so nothing downloads); the difference
to measure is speed (one batched ``predict`` vs one call per document) and that the two agree.  Tatoeba labels
are ISO 639-3; they are mapped to lid.176's labels with Babel's alias table plus the macro-language cases below,
and languages lid.176 cannot output are listed as unsupported rather than counted as errors.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from typing import Any

#: Tatoeba (ISO 639-3) → lid.176 where Babel's alias table does not say it (individual vs macro-languages)
OVERRIDES = {
    "cmn": "zh",
    "zsm": "ms",
    "lvs": "lv",
    "pes": "fa",
    "swh": "sw",
    "nob": "no",
    "tgl": "tl",
    "mhr": "mhr",
    "gsw": "als",
    "arq": "ar",
    "uzb": "uz",
    "kur": "ku",
    "mon": "mn",
    "yue": "yue",
    "wuu": "wuu",
    "arz": "arz",
    "ber": "ber",
    "kzj": "kzj",
    "dtp": "dtp",
    "srp": "sr",
    "hrv": "hr",
    "bos": "bs",
}


def to_lid176(code: str, labels: set[str]) -> str | None:
    from babel.core import get_global

    code = OVERRIDES.get(code) or get_global("language_aliases").get(code, code)
    code = code.split("_")[0]
    return code if code in labels else None


def load_tatoeba(path: str) -> list[tuple[str, str]]:
    """(language, sentence) rows of a Tatoeba/LASER TSV."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: give --tsv <Tatoeba TSV with language and sentence columns>"
        )
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            lang, _, text = line.rstrip("\n").partition("\t")
            if n == 0 and lang == "lang":
                continue
            if text:
                rows.append((lang, text))
    return rows


def datatrove_predictor(model_path: str) -> Any:
    """datatrove's LanguageFilter with its FT176LID pointed at the local model (no download)."""
    from datatrove.pipeline.filters import LanguageFilter
    from fasttext.FastText import _FastText

    lf = LanguageFilter(languages=None, language_threshold=0.0)
    lf.model._model = _FastText(model_path=model_path)
    return lf


def evaluate(tsv: str, limit: int | None = None) -> dict[str, Any]:
    """Per-language and overall accuracy, agreement and docs/s for both implementations."""
    from datatrove.data import Document

    from filters.langid import lid_model_path, load_fasttext, predict_languages

    rows = load_tatoeba(tsv)[:limit]
    model_path = lid_model_path()
    model = load_fasttext(model_path)
    labels = {lab.removeprefix("__label__") for lab in model.get_labels()}
    t0 = time.perf_counter()
    ours, _ = predict_languages(model, [t for _, t in rows])
    t_ours = time.perf_counter() - t0
    lf = datatrove_predictor(model_path)
    t0 = time.perf_counter()
    theirs = [lf.model.predict(Document(text=t, id=str(i)))[0][0] for i, (_, t) in enumerate(rows)]
    t_theirs = time.perf_counter() - t0
    per: dict[str, Counter] = defaultdict(Counter)
    unsupported: Counter = Counter()
    for (code, _), o, d in zip(rows, ours, theirs, strict=True):
        want = to_lid176(code, labels)
        if want is None:
            unsupported[code] += 1
            continue
        c = per[code]
        c["n"] += 1
        c["winnow"] += int(o[0] == want)
        c["datatrove"] += int(d == want)
        c["agree"] += int(o[0] == d)
    n = sum(c["n"] for c in per.values())
    return {
        "sentences": len(rows),
        "scored": n,
        "languages": len(per),
        "unsupported": dict(unsupported),
        "winnow_accuracy": round(sum(c["winnow"] for c in per.values()) / n, 4),
        "datatrove_accuracy": round(sum(c["datatrove"] for c in per.values()) / n, 4),
        "agreement": round(sum(c["agree"] for c in per.values()) / n, 4),
        "macro_accuracy": round(sum(c["winnow"] / c["n"] for c in per.values()) / len(per), 4),
        "winnow_docs_per_s": round(len(rows) / t_ours),
        "datatrove_docs_per_s": round(len(rows) / t_theirs),
        "per_language": {
            k: {
                "n": c["n"],
                "winnow": round(c["winnow"] / c["n"], 3),
                "datatrove": round(c["datatrove"] / c["n"], 3),
            }
            for k, c in sorted(per.items())
        },
    }


def format_eval(r: dict[str, Any], per_language: bool = False) -> str:
    lines = [
        f"LID on Tatoeba: {r['sentences']:,} sentences; {r['scored']:,} in {r['languages']} languages lid.176 knows",
        f"  accuracy: winnow {r['winnow_accuracy']}  datatrove {r['datatrove_accuracy']}  "
        f"(agreement {r['agreement']}; macro-average over languages {r['macro_accuracy']})",
        f"  speed: winnow {r['winnow_docs_per_s']:,} docs/s  datatrove {r['datatrove_docs_per_s']:,} docs/s",
        f"  unsupported by lid.176 ({len(r['unsupported'])}): {', '.join(sorted(r['unsupported']))}",
    ]
    if per_language:
        lines += [
            f"  {k:<5} n={v['n']:<4} winnow {v['winnow']:.3f}  datatrove {v['datatrove']:.3f}"
            for k, v in r["per_language"].items()
        ]
    return "\n".join(lines)
