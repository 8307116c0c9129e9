"""By hand, on a machine with a GPU and Ray: the runner's actor pool for RobertaQuality takes the GPU.

Makes a random roberta-base checkpoint, asks ``_actor_steps`` for the pool, scores 48 documents through it and asks
the actor where its model lives; then gives the GPU back and runs the books fixtures through ``run_recipe`` (Ray
executor), comparing the written ``quality_prob`` with CPU float32 scores.  Run from the repository root:
``python bench/ray_gpu_check.py``.  Not part of ``make bench`` (it needs a GPU).
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch
from transformers import AutoTokenizer

from bench.bench_models import _docs, _random_model
from classifiers.roberta import RobertaScorer, train_bpe_tokenizer
from classifiers.steps import RobertaQuality
from pipelines.core.recipe import Recipe
from pipelines.readers.books import BooksReader
from pipelines.runner import _actor_steps, run_recipe

tmp = tempfile.mkdtemp()
docs = _docs(48)
train_bpe_tokenizer(docs, tmp, 8000)
tok = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
model = _random_model((768, 12, 12), tok)
model.save_pretrained(tmp)
tok.save_pretrained(tmp)
books = os.path.join(os.getcwd(), "tests", "fixtures", "books")


def recipe():
    return Recipe(source="books", reader=BooksReader(), steps=[RobertaQuality(name="roberta", model_dir=tmp)])


ray.init(num_cpus=4, include_dashboard=False, log_to_driver=True)
print(
    "ray",
    ray.__version__,
    "cluster",
    {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")},
    flush=True,
)
r = _actor_steps(recipe())
step = r.steps[0]
print("step type", type(step).__name__, getattr(step, "placement", None), flush=True)
batch = pa.table({"id": [str(i) for i in range(48)], "text": docs})
got = np.array(step(batch).table.column("quality_prob").to_pylist())
info = ray.get(
    step.actors[0].__ray_call__.remote(
        lambda a: {
            "device": a.step._scorer.device,
            "dtype": str(next(a.step._scorer.model.parameters()).dtype),
            "batch_size": a.step._scorer.batch_size,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "pid": os.getpid(),
        }
    )
)
print("actor", info, "driver pid", os.getpid(), flush=True)
ref = RobertaScorer.from_model(model, tok, batch_size=16).predict(docs)
print("actor scores vs CPU float32: max diff", float(np.abs(got - ref).max()), flush=True)
for a in step.actors:  # give the GPU back: run_recipe makes its own pool
    ray.kill(a)
del step, r
time.sleep(2)
out = os.path.join(tmp, "out")
t0 = time.perf_counter()
res = run_recipe(recipe(), books, out, progress=False)
print(
    "run_recipe",
    round(time.perf_counter() - t0, 1),
    "s; inputs",
    res.summary["inputs"],
    "kept",
    res.summary["kept"],
    "actor_steps",
    res.summary.get("actor_steps"),
    flush=True,
)
t = pq.read_table(os.path.join(out, "books", "docs"))
texts = t.column("text").to_pylist()
ref = RobertaScorer.from_model(model, tok, batch_size=4).predict(texts)
print(
    "run scores vs CPU float32 over",
    len(texts),
    "books: max diff",
    float(np.abs(np.array(t.column("quality_prob").to_pylist()) - ref).max()),
)
