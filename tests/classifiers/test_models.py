"""Quality models: tiny models trained on tests/fixtures/quality must rank held-out good text above web junk."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from classifiers.corpora import jsonl_docs
from classifiers.perplexity import KENLM_CACHE, normalize
from classifiers.steps import Perplexity, RobertaQuality, WikiRefScore
from classifiers.wikiref import binary_metrics, roc_auc, train_wikiref
from filters.thresholds import ScoreFilter
from pipelines.core.process import run_steps
from tests.helpers.paths import FIXTURES as TEST_FIXTURES

FIXTURES = os.path.join(TEST_FIXTURES, "quality")

REF = [d.text for d in jsonl_docs(os.path.join(FIXTURES, "reference.jsonl"), "reference")]
WEB = [d.text for d in jsonl_docs(os.path.join(FIXTURES, "web.jsonl"), "web")]
HELD = 6  # the last HELD of each class are never trained on


def _batch(docs: list[str]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(docs))], "text": docs})


@pytest.fixture(scope="module")
def wikiref_model(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("wikiref"))
    train_wikiref(REF[:-HELD], WEB[:-HELD], out, seed=0)
    return os.path.join(out, "model.bin")


def test_normalize_is_ccnet_like():
    assert normalize("  Élan  in 1987,  “quoted” — OK ") == 'elan in 0000, "quoted" - ok'


def test_wikiref_ranks_heldout_reference_above_web(wikiref_model):
    step = WikiRefScore(model_path=wikiref_model)
    table = step(_batch(REF[-HELD:] + WEB[-HELD:])).table
    prob = np.array(table.column("wikiref_prob").to_pylist())
    assert table.schema.field("wikiref_prob").type == pa.float32()
    assert roc_auc(np.array([1] * HELD + [0] * HELD), prob) >= 0.9
    assert prob[:HELD].mean() > prob[HELD:].mean() + 0.3


def test_binary_metrics_counts():
    m = binary_metrics(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.6, 0.1]))
    assert (m["precision"], m["recall"], m["accuracy"], m["auc"]) == (0.5, 0.5, 0.5, 0.75)


@pytest.mark.skipif(
    not os.path.exists(os.path.join(KENLM_CACHE, "bin", "lmplz")),
    reason="KenLM's lmplz is not built: run `make models` (or classifiers/build_kenlm.sh)",
)
def test_perplexity_ranks_and_buckets(tmp_path):
    from classifiers.perplexity import train_perplexity_model

    meta = train_perplexity_model(REF[:-HELD], WEB[:-HELD], str(tmp_path / "en"), vocab_size=500)
    lo, hi = meta["cutoffs"]
    assert lo <= hi
    step = Perplexity(model_dir=str(tmp_path))
    table = step(_batch(REF[-HELD:] + WEB[-HELD:])).table
    ppl = np.array(table.column("perplexity").to_pylist())
    assert np.median(ppl[:HELD]) < np.median(ppl[HELD:])
    assert roc_auc(np.array([0] * HELD + [1] * HELD), ppl) >= 0.8  # web text is more perplexing
    buckets = table.column("ppl_bucket").to_pylist()
    assert set(buckets) <= {"head", "middle", "tail"}
    assert buckets[:HELD].count("head") > buckets[HELD:].count("head")


def test_perplexity_for_unmodelled_language_is_null(tmp_path):
    step = Perplexity(model_dir=str(tmp_path), languages=[])
    step._ready = True
    step._models = {}
    table = step(pa.table({"id": ["a"], "text": ["Bonjour tout le monde"], "lang": ["fr"]})).table
    assert table.column("perplexity").to_pylist() == [None]


@pytest.mark.parametrize(
    "step, what",
    [
        (Perplexity(model_dir="nowhere"), "perplexity"),
        (WikiRefScore(model_path="nowhere/model.bin"), "wiki"),
        (RobertaQuality(model_dir="nowhere"), "RoBERTa"),
    ],
)
def test_missing_model_says_make_models(step, what):
    with pytest.raises(FileNotFoundError, match="make models"):
        step.setup()


def test_score_filter_reasons():
    f = ScoreFilter(name="wikiref_filter", column="wikiref_prob", min=0.25)
    batch = pa.table({"wikiref_prob": pa.array([0.9, 0.1, None], pa.float32())})
    assert f(batch).reasons == [None, "wikiref_filter:below_min", "wikiref_filter:null"]
    b = ScoreFilter(name="ppl_filter", column="ppl_bucket", allowed=["head", "middle"], keep_null=True)
    assert b(pa.table({"ppl_bucket": ["head", "tail", None]})).reasons == [None, "ppl_filter:tail", None]
    with pytest.raises(ValueError, match="column"):
        ScoreFilter(name="x")


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory, wikiref_model) -> tuple[str, dict]:
    """Distilled as Llama 3: labels from the fastText model, held-out truth from the source."""
    from classifiers.roberta import SmallConfig, train_roberta
    from classifiers.wikiref import wiki_probability
    from filters.langid import load_fasttext

    out = str(tmp_path_factory.mktemp("roberta"))
    texts = REF[:-HELD] + WEB[:-HELD]
    labels = [int(p >= 0.5) for p in wiki_probability(load_fasttext(wikiref_model), texts)]
    size = SmallConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=600
    )
    meta = train_roberta(texts, labels, out, size=size, epochs=8, max_length=64, seed=0, holdout=0.1)
    return out, meta


def test_roberta_ranks_heldout_reference_above_web(tiny_roberta):
    out, meta = tiny_roberta
    assert meta["losses"][-1] < meta["losses"][0]
    step = RobertaQuality(model_dir=out, batch_size=4)
    table = step(_batch(REF[-HELD:] + WEB[-HELD:])).table
    prob = np.array(table.column("quality_prob").to_pylist())
    assert roc_auc(np.array([1] * HELD + [0] * HELD), prob) >= 0.8
    assert os.path.exists(os.path.join(out, "config.json")) and os.path.exists(
        os.path.join(out, "winnow_meta.json")
    )


def test_roberta_batched_sorted_inference_matches_per_document(tiny_roberta):
    from classifiers.roberta import RobertaScorer

    docs = [REF[0] * 3, WEB[1], "", REF[2][:40], WEB[3] * 20]  # mixed lengths, one empty, one past max_length
    scorer = RobertaScorer(tiny_roberta[0], batch_size=5, max_length=128)
    batched = scorer.predict(docs)
    single = np.concatenate([scorer.predict([d]) for d in docs])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_token_batches_pack_short_documents_and_respect_the_budget():
    from classifiers.roberta import token_batches

    lengths = np.array([3, 5, 5, 8, 60, 120, 512, 700])  # sorted; 700 alone is over any budget below it
    batches = token_batches(lengths, 128)
    assert batches[0][0] == 0 and batches[-1][1] == len(lengths)
    assert all(a < b for a, b in batches) and all(
        b == c for (_, b), (c, _) in zip(batches[:-1], batches[1:], strict=True)
    )
    for a, b in batches:  # within budget unless a single document is larger on its own
        assert (b - a) * lengths[b - 1] <= 128 or b - a == 1
    assert batches[0] == (
        0,
        4,
    )  # the four short ones share a batch; adding the 60 would make 5 x 60 = 300 > 128
    assert (6, 7) in batches and (7, 8) in batches
    assert token_batches(np.array([4] * 10), 16) == [(0, 4), (4, 8), (8, 10)]


def test_int8_quantized_roberta_stays_close_to_float32_and_keeps_the_ranking(tiny_roberta):
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from classifiers.roberta import RobertaScorer

    docs = REF[-HELD:] + WEB[-HELD:]
    fp32 = RobertaQuality(model_dir=tiny_roberta[0], batch_size=4)(_batch(docs)).table
    step = RobertaQuality(model_dir=tiny_roberta[0], batch_size=4, quantize="int8")
    int8 = step(_batch(docs)).table
    assert any("quantized" in type(m).__module__ for m in step._scorer.model.modules())
    a = np.array(fp32.column("quality_prob").to_pylist())
    b = np.array(int8.column("quality_prob").to_pylist())
    assert np.abs(a - b).max() < 0.01
    # the tiny trained model's scores differ by 1e-4 between documents, too little to test a ranking: a wider
    # (random) model whose scores spread out shows that int8 keeps the order of real documents
    tok = AutoTokenizer.from_pretrained(tiny_roberta[0], local_files_only=True)
    torch.manual_seed(0)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.2,
    )
    model = RobertaForSequenceClassification(cfg).eval()
    texts = REF + WEB
    p32 = RobertaScorer.from_model(model, tok, max_length=128).predict(texts)
    p8 = RobertaScorer.from_model(model, tok, max_length=128, quantize="int8").predict(texts)
    assert p32.std() > 0.05
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(p32), rank(p8))[0, 1] >= 0.95
    assert np.abs(p32 - p8).mean() < 0.05
    with pytest.raises(ValueError, match="quantize"):
        RobertaQuality(model_dir=tiny_roberta[0], quantize="int4").setup()


def test_cascade_runs_roberta_only_on_survivors(tiny_roberta, wikiref_model):
    from pipelines.core.process import StepStats

    steps = [
        WikiRefScore(model_path=wikiref_model),
        ScoreFilter(name="wikiref_filter", column="wikiref_prob", min=0.5),
        RobertaQuality(model_dir=tiny_roberta[0]),
    ]
    batch = _batch(REF[-HELD:] + WEB[-HELD:])
    stats = [StepStats(s.name, s.kind) for s in steps]
    kept, dropped = run_steps(steps, batch, stats)
    n_dropped = sum(t.num_rows for t in dropped)
    assert n_dropped >= HELD // 2 and kept.num_rows + n_dropped == 2 * HELD
    assert "quality_prob" in kept.column_names and kept.column("quality_prob").null_count == 0


def test_label_file_errors_name_the_line(tmp_path):
    from classifiers.roberta import read_label_file

    p = tmp_path / "labels.jsonl"
    p.write_text(json.dumps({"text": "a", "label": 1}) + "\n" + json.dumps({"text": "b"}) + "\n")
    with pytest.raises(ValueError, match=":2:"):
        read_label_file(str(p))


@pytest.mark.integration
def test_lid_eval_on_tatoeba_agrees_with_datatrove():
    from classifiers.lid_eval import evaluate
    from tests.helpers.paths import corpus_path

    r = evaluate(corpus_path("langid", "tatoeba_laser_v1_part1.tsv"), limit=3000)
    assert r["agreement"] == 1.0 and r["winnow_accuracy"] == r["datatrove_accuracy"]
    assert 0.6 < r["winnow_accuracy"] <= 1.0  # speed: bench/bench_models.py (never asserted in a test)


_ACTOR_RUN = r"""
import json, sys
import ray
from classifiers.steps import RobertaQuality
from pipelines.readers.books import BooksReader
from pipelines.core.recipe import Recipe
from pipelines.runner import run_recipe

model_dir, books, out_ray, out_local = sys.argv[1:5]
recipe = lambda: Recipe(source="books", reader=BooksReader(), steps=[RobertaQuality(name="roberta", model_dir=model_dir)])
# a cluster that says it has one GPU: Ray sets CUDA_VISIBLE_DEVICES for the actor, torch finds no CUDA here and
# the actor scores on its CPU -- the placement is what is under test
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
remote = run_recipe(recipe(), books, out_ray, progress=False)
ray.shutdown()
local = run_recipe(recipe(), books, out_local, executor="local", progress=False)
print(json.dumps({"ray": remote.summary, "local": local.summary}))
"""


def test_roberta_runs_as_an_actor_pool_when_the_cluster_has_a_gpu(tiny_roberta, tmp_path):
    """Five book inputs (five Ray tasks) share one RobertaQuality actor holding the cluster's GPU; the scores are
    those of the in-task run."""
    import subprocess
    import sys

    import duckdb

    from tests.helpers.paths import FIXTURES, REPO

    out_ray, out_local = str(tmp_path / "ray"), str(tmp_path / "local")
    books = os.path.join(FIXTURES, "books")
    r = subprocess.run(
        [sys.executable, "-c", _ACTOR_RUN, tiny_roberta[0], books, out_ray, out_local],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs["ray"]["actor_steps"] == {"roberta": {"actors": 1, "num_gpus": 1}}
    assert "actor_steps" not in runs["local"]
    assert runs["ray"]["inputs"] == 5 and runs["ray"]["kept"] == runs["local"]["kept"] > 0
    assert runs["ray"]["steps"]["roberta"]["seen"] == runs["local"]["steps"]["roberta"]["seen"]

    def scores(out: str) -> dict[str, float]:
        sql = f"SELECT id, quality_prob FROM read_parquet('{out}/books/docs/*.parquet')"
        return dict(duckdb.sql(sql).fetchall())

    ray_scores, local_scores = scores(out_ray), scores(out_local)
    assert ray_scores.keys() == local_scores.keys() and len(ray_scores) == runs["local"]["kept"]
    for key, value in ray_scores.items():
        assert value is not None and abs(value - local_scores[key]) < 1e-5, key
