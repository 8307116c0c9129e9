"""The RoBERTa quality classifier (Llama 3: a transformer trained on labels from the previous, cheaper model).

By default a small ``RobertaForSequenceClassification`` is trained from scratch with a ByteLevel BPE tokenizer
learnt on the local text; ``init_from`` names any local Hugging Face RoBERTa checkpoint to fine-tune instead.
Nothing downloads: every ``from_pretrained`` call is given a local directory.  Labels come from the fastText
wiki-reference classifier (distillation) or from a user's JSONL label file (``text``, ``label``).

Inference (:class:`RobertaScorer`) tokenizes all texts in one call, sorts them by token length and cuts batches by a
token budget (``batch_size`` x ``max_length`` padded tokens), so dynamic padding wastes little and short documents go
many at a time; it truncates at 512 tokens and runs under ``torch.inference_mode``, on CUDA (float16) when torch sees
one.
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
    batch), CPU only; scores move by a few thousandths (tests/classifiers/test_models.py bounds it), the base size runs ~1.5x
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


def default_batch_size(device: str) -> int:
    """Documents per batch at ``max_length`` tokens (shorter documents pack more into the same number of tokens).

    4 on a CPU: at 512 tokens, int8 roberta-base ran 2.3 docs/s in batches of 4 against 1.8 in batches of 16
    (float32 the same either way); 128 on a GPU (H100, base size: 2,620 docs/s against 2,400 with batches of 32;
    bench/results.md, models-gpu)."""
    return 4 if device == "cpu" else 128


class RobertaScorer:
    """Batched, length-sorted, dynamically padded inference; ``predict`` returns P(label 1) per text."""

    def __init__(
        self,
        model_dir: str,
        batch_size: int | None = None,
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
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in every worker's log
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.model = (
            RobertaForSequenceClassification.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
            .to(self.device)
            .eval()
        )
        self.batch_size, self.max_length = batch_size or default_batch_size(self.device), max_length
        self.model = quantized(self.model, quantize, self.device)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        batch_size: int | None = None,
        max_length: int = 512,
        quantize: str | None = None,
    ) -> RobertaScorer:
        self = cls.__new__(cls)
        self.device = next(model.parameters()).device.type
        self.model, self.tokenizer = quantized(model.eval(), quantize, self.device), tokenizer
        self.batch_size, self.max_length = batch_size or default_batch_size(self.device), max_length
        return self

    def predict(self, texts: list[str], positive: int = 1) -> np.ndarray:
        import torch

        out = np.zeros(len(texts), dtype=np.float32)
        if not texts:
            return out
        # one tokenizer call for all texts (parallel in Rust), then batches of similar token length
        ids = self.tokenizer([t or " " for t in texts], truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        on_gpu = self.device != "cpu"
        pending: list[tuple[np.ndarray, Any]] = []
        with torch.inference_mode():
            for a, b in token_batches(lengths[order], self.batch_size * self.max_length):
                idx = order[a:b]
                input_ids = np.full((len(idx), int(lengths[idx[-1]])), pad, dtype=np.int64)
                mask = np.zeros_like(input_ids)
                for row, i in enumerate(idx):  # right padding, as the tokenizer pads RoBERTa
                    input_ids[row, : lengths[i]] = ids[i]
                    mask[row, : lengths[i]] = 1
                enc = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
                if on_gpu:
                    # pinned memory + non_blocking: the copy does not wait for the previous batch's kernels, so
                    # the CPU prepares batch i+1 while the GPU runs batch i; the scores are read once at the end
                    enc = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in enc.items()}
                probs = torch.softmax(self.model(**enc).logits.float(), dim=-1)[:, positive]
                if on_gpu:
                    pending.append((idx, probs))
                else:
                    out[idx] = probs.numpy()
            for idx, probs in pending:
                out[idx] = probs.cpu().numpy()
        return out


def token_batches(sorted_lengths: np.ndarray, max_tokens: int) -> list[tuple[int, int]]:
    """Split documents sorted by token length into consecutive batches whose padded size (documents x longest)
    stays within ``max_tokens`` (at least one document each): many short documents share a batch, long ones go
    a few at a time."""
    batches, start = [], 0
    for j, length in enumerate(sorted_lengths):
        if j > start and (j - start + 1) * int(length) > max_tokens:
            batches.append((start, j))
            start = j
    batches.append((start, len(sorted_lengths)))
    return batches


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
