"""Decontamination: planted benchmark passages leave the stage with benchmark and n-gram; clean text stays."""

from __future__ import annotations

import glob
import json
import os
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import xxhash

from mixtures.build import build_stage
from mixtures.decontam import NGramIndex, read_benchmark
from mixtures.spec import BenchmarkSpec, DecontamSpec, load_mixture
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture
from tests.helpers.paths import FIXTURES, corpus_path

TINY = os.path.join(FIXTURES, "mixtures")


def _tiny_index(n: int = 13) -> NGramIndex:
    return NGramIndex.from_spec(
        DecontamSpec(
            n,
            (
                BenchmarkSpec("tinymath", os.path.join(TINY, "tiny_bench.jsonl"), ("question", "answer")),
                BenchmarkSpec(
                    "tinymmlu", os.path.join(TINY, "tiny_bench.csv"), ("question", "choice0", "choice1")
                ),
            ),
        )
    )


def test_index_matches_reformatted_passages_and_verifies_hits():
    index = _tiny_index()
    assert index.items == {"tinymath": 3, "tinymmlu": 1} and index.short_items == {"tinymath": 1}
    # punctuation, case, line breaks and numbers differ: still the same 13 words after normalisation
    quoted = (
        "Forum post: a BAKER fills 3 trays with 5 rolls each, and sells all but 9 of them at the "
        "Saturday market!\nHow many rolls did the baker sell? I think it's 271."
    )
    m = index.match(quoted)
    assert m is not None and m.benchmark == "tinymath" and m.item == "1" and len(m.ngram.split()) == 13
    assert (
        index.match("The Danube flows through Budapest, the capital of Hungary, on its way to the sea.")
        is None
    )
    mmlu = index.match(
        "Quiz: the enzyme that unwinds the double helix ahead of the replication fork during DNA "
        "replication in bacteria is called helicase"
    )
    assert mmlu is not None and mmlu.benchmark == "tinymmlu"
    # a hash hit whose stored n-gram differs (a collision) is not a match: hits are verified word by word
    thirteen = "A baker fills 12 trays with 24 rolls each and sells all but"
    hit = index.match(thirteen)
    assert hit is not None and hit.n_matches == 1
    h = next(k for k, v in index.entries.items() if v[2] == hit.ngram)
    index.entries[h] = (
        "tinymath",
        "1",
        "a different thirteen word n gram that only shares its hash value here",
    )
    assert index.match(thirteen) is None


def test_agrees_with_datatrove_ngrams_decont_filter(tmp_path):
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer

    cfg = NGramsDecontConfig(n_grams=13, find_query_ngrams=True, find_overlap_ngrams=False)
    dt_filter = NGramsDecontFilter(index_folder=str(tmp_path), config=cfg)
    # datatrove 0.10.1 passes str to xxhash, which this xxhash release refuses; hash the UTF-8 bytes instead
    dt_filter.hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    # the indexer's constructor demands lighteval (to download tasks); its compute_hashes needs only these three
    indexer = SimpleNamespace(config=cfg, tokenizer=dt_filter.tokenizer, hash_func=dt_filter.hash_func)
    spec = BenchmarkSpec("tinymath", os.path.join(TINY, "tiny_bench.jsonl"), ("question", "answer"))
    dt_filter._index_hashes = {
        h: "tinymath"
        for _, text in read_benchmark(spec)
        for h in NGramsDecontIndexer.compute_hashes(indexer, text)
    }
    ours = NGramIndex.from_spec(DecontamSpec(13, (spec,)))
    clean = docs_table("commoncrawl", 40, seed=3).column("text").to_pylist()
    planted = [
        "Homework help. A baker fills 12 trays with 24 rolls each and sells all but 17 of them at the Saturday "
        "market. How many rolls did the baker sell? Show your work.",
        "Trivia night: which river flows through the city of Budapest and divides it into the hilly western bank "
        "and the flat eastern bank? Answer below.",
        "A baker fills 12 trays with 24 rolls each and sells all of them.",  # too short to share 13 words
    ]
    docs = clean + planted
    theirs = [dt_filter.filter(Document(text=t, id=str(i))) is not True for i, t in enumerate(docs)]
    mine = [ours.match(t) is not None for t in docs]
    assert mine == theirs and sum(mine) == 2


@pytest.mark.integration
def test_stage_removes_planted_benchmark_passages_and_nothing_else(tmp_path):
    bench_dir = corpus_path("benchmarks")
    gsm = json.loads(open(os.path.join(bench_dir, "gsm8k_test_part1.jsonl")).readline())
    he = json.loads(open(os.path.join(bench_dir, "humaneval_part1.jsonl")).readline())
    mmlu = json.loads(open(os.path.join(bench_dir, "mmlu_test_sample.jsonl")).readlines()[5])
    # a clean sample: real book prose and real Wikipedia-like docs, split into documents
    book = open(
        glob.glob(os.path.join(corpus_path("books"), "gutenberg-*.txt"))[0],
        encoding="utf-8",
        errors="replace",
    ).read()
    paragraphs = [p for p in book.split("\n\n") if len(p.split()) > 40][:150]
    out = str(tmp_path / "out")
    cc = docs_table("commoncrawl", 60, seed=5)
    texts = cc.column("text").to_pylist()
    texts[10] = "Math forum. " + gsm["question"] + "\nMy answer: " + gsm["answer"]
    texts[20] = "Tutorial blog:\n" + he["prompt"] + he["canonical_solution"]
    texts[30] = "Study notes. " + mmlu["question"] + " " + " ".join(mmlu["choices"])
    import pyarrow as pa

    write_docs(out, "commoncrawl", cc.set_column(3, "text", pa.array(texts, pa.large_string())))
    books = docs_table("books", len(paragraphs)).set_column(
        3, "text", pa.array(paragraphs, pa.large_string())
    )
    write_docs(out, "books", books)
    core = load_mixture("core")
    path = write_mixture(
        str(tmp_path / "m.yaml"),
        {"commoncrawl": {"share": 0.8}, "books": {"share": 0.2}},
        stage="decon",
        decontaminate={
            "n": 13,
            "benchmarks": [
                {"name": b.name, "path": b.path, "fields": list(b.fields)}
                for b in core.decontaminate.benchmarks
            ],
        },
    )
    m = build_stage(load_mixture(path=path), out)
    report = pq.read_table(os.path.join(out, "mixtures", "decon", "decontamination.parquet")).to_pylist()
    removed = {r["id"]: r for r in report}
    assert set(removed) == {"commoncrawl/5/00010", "commoncrawl/5/00020"} | (
        {"commoncrawl/5/00030"} if len(mmlu["question"].split()) + 4 >= 13 else set()
    )
    assert removed["commoncrawl/5/00010"]["benchmark"] == "gsm8k"
    assert removed["commoncrawl/5/00020"]["benchmark"] == "humaneval"
    assert all(len(r["ngram"].split()) == 13 for r in report)
    shard_ids = {
        r["id"]
        for r in pq.read_table(
            glob.glob(os.path.join(out, "mixtures", "decon", "shard-*"))[0], columns=["id"]
        ).to_pylist()
    }
    assert not shard_ids & set(removed)
    assert (
        m["decontamination"]["removed"] == len(removed)
        and m["decontamination"]["removed_by_benchmark"]["gsm8k"]
    )
    by = {s["name"]: s for s in m["sources"]}
    assert by["books"]["contaminated_documents"] == 0 and by["books"]["available_documents"] == len(
        paragraphs
    )


def test_number_only_ngrams_do_not_flag_numeric_tables():
    # GSM8K-style arithmetic normalises to "0 0 0 ..."; before this rule it flagged six Gutenberg table pages
    index = _tiny_index()
    index.add("tinymath", "nums", "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 = 105")
    index.freeze()
    assert index.degenerate > 0
    table = "Table II. 1820 1821 1822 1823 1824 1825 1826 1827 1828 1829 1830 1831 1832 1833 1834"
    assert index.match(table) is None
    assert index.match("a baker fills 12 trays with 24 rolls each and sells all but 17 of them") is not None
