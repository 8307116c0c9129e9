"""Quality-model throughput (docs/s): lid.176, wiki-reference fastText, KenLM perplexity, RoBERTa at two sizes,
against transformers' ``pipeline("text-classification")`` called once per document (the naive baseline).

RoBERTa models are randomly initialised (speed does not depend on the weights); documents are web-like text of
~512 tokens.  Set BENCH_MODELS_DOCS to change the sample size.  Writes the "models" section of bench/results.md.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine, md_table, write_section  # noqa: E402
from classifiers.corpora import FIXTURES, jsonl_docs  # noqa: E402

N = int(os.environ.get("BENCH_MODELS_DOCS", "48"))


def _docs(n: int) -> list[str]:
    base = [
        d.text for f in ("reference.jsonl", "web.jsonl") for d in jsonl_docs(os.path.join(FIXTURES, f), "x")
    ]
    long = [(" ".join(base[i:] + base[:i]))[:2600] for i in range(len(base))]  # ~512 BPE tokens each
    return [long[i % len(long)] for i in range(n)]


def rate(fn, docs: list[str]) -> float:
    fn(docs[:4])  # warm-up
    t0 = time.perf_counter()
    fn(docs)
    return round(len(docs) / (time.perf_counter() - t0), 1)


def roberta_rates(
    size: tuple[int, int, int], docs: list[str], tok_dir: str
) -> tuple[float, float, float, float]:
    """docs/s of RobertaScorer (float32), of RobertaScorer(quantize="int8"), of the naive pipeline, and the largest
    difference of an int8 score from the float32 one."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification, pipeline

    from classifiers.roberta import RobertaScorer

    hidden, layers, heads = size
    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=514,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(cfg).eval()
    ours = RobertaScorer.from_model(model, tok, batch_size=16, max_length=512)
    naive = pipeline("text-classification", model=model, tokenizer=tok, device=-1)
    naive_rate = rate(lambda ds: [naive(d, truncation=True, max_length=512) for d in ds], docs)
    ours_rate = rate(ours.predict, docs)
    int8 = RobertaScorer.from_model(model, tok, batch_size=16, max_length=512, quantize="int8")
    int8_rate = rate(int8.predict, docs)
    diff = float(abs(ours.predict(docs[:8]) - int8.predict(docs[:8])).max())
    return ours_rate, int8_rate, naive_rate, diff


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    from classifiers.perplexity import PerplexityModel
    from classifiers.roberta import train_bpe_tokenizer
    from classifiers.steps import model_path
    from classifiers.wikiref import wiki_probability
    from filters.langid import lid_model_path, load_fasttext, predict_languages

    docs = _docs(N)
    rows: list[list[object]] = []
    big = docs * 20
    rows.append(
        [
            "lid.176 (batched)",
            rate(lambda d: predict_languages(load_fasttext(lid_model_path()), d), big),
            "",
            "",
        ]
    )
    wikiref = model_path("models/wikiref/model.bin")
    if os.path.exists(wikiref):
        rows.append(
            [
                "wiki-reference fastText",
                rate(lambda d: wiki_probability(load_fasttext(wikiref), d), big),
                "",
                "",
            ]
        )
    kenlm_dir = model_path("models/kenlm/en")
    if os.path.exists(kenlm_dir):
        lm = PerplexityModel.load(kenlm_dir)
        rows.append(
            ["KenLM perplexity (en)", rate(lambda d: [lm.perplexity(t) for t in d], docs * 4), "", ""]
        )
    with tempfile.TemporaryDirectory() as tmp:
        train_bpe_tokenizer(docs, tmp, vocab_size=8000)
        for label, size, n in [
            ("RoBERTa small (4L/256H)", (256, 4, 4), N),
            ("RoBERTa base (12L/768H)", (768, 12, 12), 16),
        ]:
            ours, int8, naive, diff = roberta_rates(size, docs[:n], tmp)
            rows.append([label, ours, naive, f"{ours / naive:.2f}x"])
            rows.append(
                [f"{label}, quantize=int8 (max |score diff| {diff:.3f})", int8, naive, f"{int8 / naive:.2f}x"]
            )
    md = (
        f"## Quality models\n\n{machine()}; ~512-token documents; `python bench/bench_models.py`\n\n"
        + md_table(["model", "docs/s", "naive pipeline() per doc, docs/s", "speed-up"], rows)
    )
    write_section("models", md)
    print(md)


if __name__ == "__main__":
    main()
