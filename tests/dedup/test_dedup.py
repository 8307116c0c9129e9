"""Dedup: normalisation agreement with datatrove, MinHash vs datasketch, workflows, resume, removal accounting."""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.evalset import exact_jaccard_pairs, make_documents, pair_metrics, real_paragraphs
from dedup.minhash import MinHashConfig, signatures
from dedup.text import jaccard, shingle_set, simplify_text, words_of
from dedup.workflow import ExactConfig, find_exact_duplicates, find_near_duplicates
from pipelines.core.corpus_stage import run_stage
from pipelines.core.schema import CORE_SCHEMA, rejected_schema, table_from_rows
from tests.helpers.cli import command
from tests.helpers.faults import dying_after
from tests.helpers.paths import CORPUS, corpus_path

dedup_main = command("dedup")

REAL = (
    "Héllo, Wörld! The café served 1,000 crêpes on 3.5 plates; naïve visitors paid €12.\n"
    "It's a well-known fact — “quotes” and (brackets) [too] are punctuation."
)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    corpus_path("wikipedia")
    return real_paragraphs(CORPUS)


def _write_docs(folder: str, docs: dict[str, list], parts: int = 2) -> None:
    os.makedirs(folder, exist_ok=True)
    n = len(docs["id"])
    step = (n + parts - 1) // parts
    for i in range(parts):
        sl = slice(i * step, (i + 1) * step)
        pq.write_table(
            pa.table({"id": docs["id"][sl], "text": docs["text"][sl]}), os.path.join(folder, f"p{i}.parquet")
        )


def test_simplify_text_agrees_with_datatrove():
    from datatrove.utils.text import simplify_text as dt_simplify

    for text in [REAL, "ÀÉÎÕÜ çà et là 2024-11-22", "tabs\tand\n\nnewlines  12.5%"]:
        assert simplify_text(text) == dt_simplify(text)
        assert words_of(text) == dt_simplify(text).split()


@pytest.mark.integration
def test_simplify_text_agrees_with_datatrove_on_real_text(paragraphs):
    from datatrove.utils.text import simplify_text as dt_simplify

    for p in paragraphs[::200]:
        assert simplify_text(p) == dt_simplify(p)


def test_minhash_estimate_tracks_exact_jaccard_and_datasketch():
    from datasketch import MinHash

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    base = " ".join(rng.choice(words, 400))
    edited = base.split()
    for i in rng.choice(len(edited), 12, replace=False):
        edited[i] = "changed"
    other = " ".join(edited)
    cfg = MinHashConfig(bands=16, rows=16)
    sig, ok = signatures([base, other, ""], cfg)
    assert ok.tolist() == [True, True, False]
    est = float(np.mean(sig[0] == sig[1]))
    exact = jaccard(shingle_set(base), shingle_set(other))
    ds = []
    for t in (base, other):
        m = MinHash(num_perm=256, seed=1)
        ws = words_of(t)
        for i in range(len(ws) - 4):
            m.update(" ".join(ws[i : i + 5]).encode())
        ds.append(m)
    assert abs(est - exact) < 0.08
    assert abs(ds[0].jaccard(ds[1]) - exact) < 0.08


@pytest.mark.integration
def test_minhash_accuracy_on_real_text_with_planted_duplicates(tmp_path, paragraphs):
    docs = make_documents(paragraphs, 1200, dup_frac=0.25, seed=3)
    _write_docs(str(tmp_path / "in"), docs)
    res = find_near_duplicates([str(tmp_path / "in")], str(tmp_path / "work"), MinHashConfig(threshold=0.8))
    truth = exact_jaccard_pairs(docs["text"])
    pos = {d: i for i, d in enumerate(docs["id"])}
    cluster = np.full(len(docs["id"]), -1)
    ids = {}
    for d, c in zip(
        res.duplicates.column("id").to_pylist(), res.duplicates.column("cluster_id").to_pylist(), strict=True
    ):
        cluster[pos[d]] = ids.setdefault(c, len(ids))
    v = pq.read_table(os.path.join(res.work, "verified")).to_pydict()
    gid_to_pos = {
        g: pos[i]
        for g, i in zip(
            res.duplicates.column("gid").to_pylist(), res.duplicates.column("id").to_pylist(), strict=True
        )
    }
    edges = {
        tuple(sorted((gid_to_pos[a], gid_to_pos[b])))
        for a, b, k in zip(v["a"], v["b"], v["kept"], strict=True)
        if k
    }
    m = pair_metrics(truth, edges, cluster)
    assert sum(1 for j in truth.values() if j >= 0.85) > 50
    assert m["recall_j085"] >= 0.95
    assert m["edge_precision"] >= 0.99


def test_cli_survivors_duplicates_and_query(tmp_path):
    texts = [
        "The river flows north through the valley and the old mill stands beside the stone bridge today.",
        "the river flows north, through the valley; and the old mill stands beside the stone bridge today!",
        "A completely different document about baking sourdough bread with a long cold fermentation.",
        "Another text entirely: the committee met on Tuesday to discuss the annual budget and hiring plan.",
    ]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["b", "a", "c", "d"], "text": texts}), folder / "docs.parquet")
    out = tmp_path / "out"
    assert dedup_main(["--input", str(folder), "--output", str(out), "--executor", "local"]) == 0
    kept = pq.read_table(out / "docs" / "docs.parquet").column("id").to_pylist()
    assert kept == ["a", "c", "d"]  # 'a' survives: smallest id of the cluster
    dups = pq.read_table(out / "duplicates" / "part-0.parquet").to_pydict()
    assert sorted(zip(dups["id"], dups["cluster_id"], dups["kept"], strict=True)) == [
        ("a", "a", True),
        ("b", "a", False),
    ]
    from pipelines.query import run_query

    cols, rows = run_query(str(out), "SELECT count(*) FROM duplicates WHERE NOT kept")
    assert rows == [(1,)]
    assert dedup_main(["--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o2")]) == 2


def test_score_column_and_reference_decide_survivors(tmp_path):
    text = "Identical article text about the history of the printing press in fifteenth century Europe " * 3
    (tmp_path / "cc").mkdir()
    (tmp_path / "wiki").mkdir()
    pq.write_table(
        pa.table(
            {
                "id": ["cc-1", "cc-2", "cc-3"],
                "text": [text, text + " extra", "unrelated words here"],
                "quality": [0.1, 0.9, 0.5],
            }
        ),
        tmp_path / "cc" / "a.parquet",
    )
    cfg = MinHashConfig(score_column="quality")
    res = find_near_duplicates([str(tmp_path / "cc")], str(tmp_path / "w1"), cfg)
    kept = dict(
        zip(res.duplicates.column("id").to_pylist(), res.duplicates.column("kept").to_pylist(), strict=True)
    )
    assert kept == {"cc-1": False, "cc-2": True}  # highest quality wins over smallest id
    pq.write_table(
        pa.table({"id": ["wiki-1"], "text": [text], "quality": [0.0]}), tmp_path / "wiki" / "w.parquet"
    )
    cfg = MinHashConfig(score_column="quality", references=[str(tmp_path / "wiki")])
    res = find_near_duplicates([str(tmp_path / "cc")], str(tmp_path / "w2"), cfg)
    kept = dict(
        zip(res.duplicates.column("id").to_pylist(), res.duplicates.column("kept").to_pylist(), strict=True)
    )
    assert kept == {"wiki-1": True, "cc-1": False, "cc-2": False}  # the reference always stays


@pytest.mark.integration
def test_resumed_minhash_run_gives_same_survivors(tmp_path, paragraphs, monkeypatch):
    docs = make_documents(paragraphs, 600, dup_frac=0.3, seed=5)
    _write_docs(str(tmp_path / "in"), docs, parts=3)
    cfg = MinHashConfig(partitions=4, executor="local")  # in this process: the kill is a patched function
    fresh = find_near_duplicates([str(tmp_path / "in")], str(tmp_path / "fresh"), cfg)
    # a run killed in the bucket pass: signatures done, 2 of 4 partitions done, nothing after
    import dedup.minhash as mh

    real = mh.bucket_task
    monkeypatch.setattr("dedup.workflow.bucket_task", dying_after(real, 2))
    with pytest.raises(KeyboardInterrupt):
        find_near_duplicates([str(tmp_path / "in")], str(tmp_path / "resumed"), cfg)
    monkeypatch.setattr("dedup.workflow.bucket_task", real)
    work = glob.glob(str(tmp_path / "resumed" / "minhash-*"))[0]
    assert len(os.listdir(os.path.join(work, "_done", "buckets"))) == 2
    resumed = find_near_duplicates([str(tmp_path / "in")], str(tmp_path / "resumed"), cfg)
    key = ["id", "cluster_id", "kept"]
    assert resumed.duplicates.select(key).to_pylist() == fresh.duplicates.select(key).to_pylist()
    assert fresh.stats["removed"] > 100


def test_exact_dedup_normalized_and_md5(tmp_path):
    texts = ["Hello, World!\nLine two.", "hello world line two", "Hello, World!\nLine two.", "something else"]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["d", "c", "b", "a"], "text": texts}), tmp_path / "in" / "x.parquet")
    norm = find_exact_duplicates([str(tmp_path / "in")], str(tmp_path / "w"), ExactConfig(mode="normalized"))
    assert sorted(
        norm.duplicates.filter(pa.compute.invert(norm.duplicates.column("kept"))).column("id").to_pylist()
    ) == ["c", "d"]
    md5 = find_exact_duplicates([str(tmp_path / "in")], str(tmp_path / "w"), ExactConfig(mode="md5"))
    assert md5.duplicates.to_pydict()["id"] == ["b", "d"]
    assert md5.duplicates.to_pydict()["kept"] == [True, False]
    assert set(md5.duplicates.column("reason").to_pylist()) == {None, "dedup:exact_md5"}


@pytest.mark.integration
def test_books_stage_collapses_editions_not_different_books(tmp_path):
    from dedup.stages import BookDedupStage

    raw = open(corpus_path("books", "gutenberg-972.txt"), encoding="utf-8", errors="replace").read()
    body = raw[len(raw) // 10 : len(raw) * 9 // 10]
    rng = np.random.default_rng(0)
    words = body.split()
    for i in rng.choice(len(words), len(words) // 200, replace=False):  # 0.5% corrections
        words[i] = words[i].upper() + "x"
    edition2 = "A NEW EDITION, REVISED.\n\n" + "\n".join(
        " ".join(words[i : i + 9]) for i in range(0, len(words), 9)
    )
    half = len(body) // 2
    other = open(corpus_path("books", "gutenberg-14263.txt"), encoding="utf-8", errors="replace").read()
    src = tmp_path / "books"
    for d in ("docs", "rejected", "stats"):
        (src / d).mkdir(parents=True)
    ids = ["ed1", "ed2", "vol1", "vol2", "other"]
    texts = [body, edition2, body[:half], body[half:], other]
    t = table_from_rows(
        [{"id": i, "source": "books", "text": x} for i, x in zip(ids, texts, strict=True)], CORE_SCHEMA
    )
    pq.write_table(t, src / "docs" / "k1.parquet")
    json.dump(
        {"read": 5, "kept": 5, "rejected": 0, "rejected_by_reason": {}}, open(src / "stats" / "k1.json", "w")
    )
    out = run_stage(BookDedupStage(settings={"threshold": 0.9}), str(src))
    left = pq.read_table(src / "docs" / "k1.parquet").column("id").to_pylist()
    assert left == [
        "ed1",
        "vol1",
        "vol2",
        "other",
    ]  # the two halves of one book are "two books by one author"
    rej = pq.read_table(src / "rejected" / "k1.parquet").to_pydict()
    assert rej["id"] == ["ed2"] and rej["reason"] == ["dedup:book"]
    stats = json.load(open(src / "stats" / "k1.json"))
    assert (stats["kept"], stats["rejected"]) == (4, 1) and out["removed"] == 1
    assert run_stage(BookDedupStage(settings={"threshold": 0.9}), str(src))["up_to_date"]


def test_minhash_stage_move_is_idempotent_after_a_kill(tmp_path, monkeypatch):
    from dedup import removal
    from dedup.stages import MinHashDedupStage

    text = (
        "Shared paragraph about tidal energy and the turbines installed in the northern estuary last year. "
        * 2
    )
    src = tmp_path / "cc"
    for d in ("docs", "rejected", "stats"):
        (src / d).mkdir(parents=True)
    t = table_from_rows(
        [
            {"id": i, "source": "cc", "text": x, "meta": m}
            for i, x, m in [
                ("x2", text, None),
                ("x1", text, '{"a": 1}'),
                ("x3", "a distinct short text", None),
            ]
        ],
        CORE_SCHEMA,
    )
    pq.write_table(t, src / "docs" / "k.parquet")
    json.dump(
        {"read": 4, "kept": 3, "rejected": 1, "rejected_by_reason": {"lang:not_en": 1}},
        open(src / "stats" / "k.json", "w"),
    )
    rej = table_from_rows(
        [
            {
                "id": "y",
                "source": "cc",
                "text": "bonjour",
                "reason": "lang:not_en",
                "rejected_by": "lang_filter",
            }
        ],
        rejected_schema(CORE_SCHEMA),
    )
    pq.write_table(rej, src / "rejected" / "k.parquet")
    # killed after the rejected file was replaced, before docs was: both hold x2
    real = removal.write_parquet_atomic
    calls = {"n": 0}

    def dying(table, path):
        calls["n"] += 1
        if "docs" in path and calls["n"] <= 2:
            raise KeyboardInterrupt("killed")
        return real(table, path)

    monkeypatch.setattr(removal, "write_parquet_atomic", dying)
    with pytest.raises(KeyboardInterrupt):
        run_stage(MinHashDedupStage(settings={"executor": "local"}), str(src))
    monkeypatch.setattr(removal, "write_parquet_atomic", real)
    run_stage(MinHashDedupStage(settings={"executor": "local"}), str(src))
    docs = pq.read_table(src / "docs" / "k.parquet").column("id").to_pylist()
    rejected = pq.read_table(src / "rejected" / "k.parquet").to_pydict()
    assert docs == ["x1", "x3"]
    assert rejected["id"] == ["y", "x2"]  # moved once, not twice
    assert json.loads(rejected["meta"][1])["dedup_cluster"] == "x1"
    stats = json.load(open(src / "stats" / "k.json"))
    assert stats["kept"] + stats["rejected"] == stats["read"] == 4
    assert stats["rejected_by_reason"] == {"dedup:minhash": 1, "lang:not_en": 1}
    shutil.rmtree(src / "_dedup")
    again = run_stage(
        MinHashDedupStage(settings={"executor": "local"}), str(src)
    )  # a full rerun over the deduplicated docs removes nothing
    assert again["removed"] == 0
