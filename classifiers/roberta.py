"""The RoBERTa quality classifier (Llama 3: a transformer trained on labels from the previous, cheaper model).

By default a small ``RobertaForSequenceClassification`` is trained from scratch with a ByteLevel BPE tokenizer
learnt on the local text; ``init_from`` names any local Hugging Face RoBERTa checkpoint to fine-tune instead.
Nothing downloads: every ``from_pretrained`` call is given a local directory.  Labels come from the fastText
wiki-reference classifier (distillation) or from a user's JSONL label file (``text``, ``label``).

Inference (:class:`RobertaScorer`) is batched with documents sorted by length so that dynamic padding wastes little,
truncates at 512 tokens, and runs under ``torch.inference_mode``, on CUDA when torch sees one.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class SmallConfig:
    """The default from-scratch model size (tiny enough to train in seconds on two cores)."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    vocab_size: int = 8000


def train_bpe_tokenizer(texts: list[str], out_dir: str, vocab_size: int = 8000) -> Any:
    """A ByteLevel BPE tokenizer learnt on ``texts``, saved as a RobertaTokenizerFast in ``out_dir``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    os.makedirs(out_dir, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    from tokenizers.processors import RobertaProcessing

    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tok = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=512,
    )
    tok.save_pretrained(out_dir)
    return tok


def build_model(tokenizer: Any, size: SmallConfig, seed: int = 0) -> Any:
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=514,
        type_vocab_size=1,
        num_labels=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return RobertaForSequenceClassification(config)


def fine_tune(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    labels: list[int],
    epochs: int = 2,
    batch_size: int = 16,
    lr: float = 5e-4,
    max_length: int = 256,
    seed: int = 0,
) -> list[float]:
    """Plain AdamW fine-tuning (length-bucketed batches); returns the mean loss per epoch."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    total = max(1, epochs * len(batches))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    model.train()
    losses = []
    for _ in range(epochs):
        rng.shuffle(batches)
        run = []
        for idx in batches:
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out = model(**enc, labels=torch.tensor([labels[i] for i in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            run.append(float(out.loss.detach()))
        losses.append(round(float(np.mean(run)), 4))
    model.eval()
    return losses


def quantized(model: Any, quantize: str | None, device: str) -> Any:
    """``quantize="int8"``: torch dynamic quantization of the Linear layers (int8 weights, activations quantized per
    batch), CPU only; scores move by a few thousandths (tests/test_models.py bounds it), the base size runs ~1.4x
    faster on an AVX2 CPU (bench/results.md).  On CUDA the model already runs in float16 and this is ignored."""
    if not quantize:
        return model
    if quantize != "int8":
        raise ValueError(f"quantize must be null or 'int8', got {quantize!r}")
    if device != "cpu":
        log.info("quantize=int8 ignored on %s (float16 there)", device)
        return model
    import warnings

    import torch

    # torch.ao.quantization announces its move to torchao; the API still works
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class RobertaScorer:
    """Batched, length-sorted, dynamically padded inference; ``predict`` returns P(label 1) per text."""

    def __init__(
        self,
        model_dir: str,
        batch_size: int = 32,
        max_length: int = 512,
        device: str | None = None,
        num_threads: int | None = None,
        quantize: str | None = None,
    ):
        import torch
        from transformers import AutoTokenizer, RobertaForSequenceClassification

        if not os.path.exists(os.path.join(model_dir, "config.json")):
            raise FileNotFoundError(
                f"no RoBERTa checkpoint in {model_dir} (config.json missing): run `make models`, "
                "or set model_dir to a local Hugging Face RoBERTa checkpoint directory"
            )
        if num_threads:
            torch.set_num_threads(num_threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.model = (
            RobertaForSequenceClassification.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
            .to(self.device)
            .eval()
        )
        self.batch_size, self.max_length = batch_size, max_length
        self.model = quantized(self.model, quantize, self.device)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        batch_size: int = 32,
        max_length: int = 512,
        quantize: str | None = None,
    ) -> RobertaScorer:
        self = cls.__new__(cls)
        self.device = next(model.parameters()).device.type
        self.model, self.tokenizer = quantized(model.eval(), quantize, self.device), tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        return self

    def predict(self, texts: list[str], positive: int = 1) -> np.ndarray:
        import torch

        out = np.zeros(len(texts), dtype=np.float32)
        if not texts:
            return out
        # sort by a cheap length proxy so each batch pads to similar lengths
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] or " " for i in idx],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**enc).logits.float()
                out[idx] = torch.softmax(logits, dim=-1)[:, positive].cpu().numpy()
        return out


def read_label_file(path: str) -> tuple[list[str], list[int]]:
    """A user's labels: JSON lines with ``text`` and ``label`` (0/1, or a probability thresholded at 0.5)."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "text" not in row or "label" not in row:
                raise ValueError(f"{path}:{n}: each line needs 'text' and 'label'")
            texts.append(row["text"])
            labels.append(int(float(row["label"]) >= 0.5))
    return texts, labels


def train_roberta(
    texts: list[str],
    labels: list[int],
    model_dir: str,
    init_from: str | None = None,
    size: SmallConfig | None = None,
    epochs: int = 2,
    max_length: int = 256,
    seed: int = 0,
    holdout: float = 0.2,
    truth: list[int] | None = None,
) -> dict[str, Any]:
    """Train on a seeded split, evaluate the held-out part (accuracy/AUC against the labels, and against ``truth``
    — the source of each text — when given), save a Hugging Face checkpoint into ``model_dir``."""
    from transformers import AutoTokenizer, RobertaForSequenceClassification

    from classifiers.wikiref import binary_metrics

    rng = random.Random(seed)
    idx = list(range(len(texts)))
    rng.shuffle(idx)
    k = max(2, int(len(idx) * holdout))
    test, train = idx[:k], idx[k:]
    if init_from:
        tokenizer = AutoTokenizer.from_pretrained(init_from, local_files_only=True)
        model = RobertaForSequenceClassification.from_pretrained(
            init_from, local_files_only=True, num_labels=2
        )
    else:
        tokenizer = train_bpe_tokenizer(
            [texts[i] for i in train], model_dir, (size or SmallConfig()).vocab_size
        )
        model = build_model(tokenizer, size or SmallConfig(), seed)
    losses = fine_tune(
        model,
        tokenizer,
        [texts[i] for i in train],
        [labels[i] for i in train],
        epochs=epochs,
        max_length=max_length,
        seed=seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    prob = RobertaScorer.from_model(model, tokenizer).predict([texts[i] for i in test])
    meta: dict[str, Any] = {
        "train": len(train),
        "losses": losses,
        "init_from": init_from,
        "heldout_vs_labels": binary_metrics(np.array([labels[i] for i in test]), prob),
    }
    if truth is not None:
        meta["heldout_vs_source"] = binary_metrics(np.array([truth[i] for i in test]), prob)
    with open(os.path.join(model_dir, "winnow_meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta
