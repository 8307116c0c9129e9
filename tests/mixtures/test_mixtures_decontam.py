"""Decontamination: planted benchmark passages leave the stage with benchmark and n-gram; clean text stays."""

from __future__ import annotations

import glob
import json
import logging
import os
import random
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from mixtures.benchmarks import BenchmarkHashes, load_index, read_items
from mixtures.build import build_stage
from mixtures.decontam import MIN_DISTINCT_WORDS, NGramIndex, decontaminate_file, sidecar_path
from mixtures.spec import SHIPPED_DIR, BenchmarkSpec, DecontamSpec, load_mixture
from tests.helpers.cli import command
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture
from tests.helpers.paths import FIXTURES, corpus_path

main = command("benchmarks")

TINY = os.path.join(FIXTURES, "mixtures")
TINY_MATH = BenchmarkSpec("tinymath", os.path.join(TINY, "tiny_bench.jsonl"), ("question", "answer"))
TINY_MMLU = BenchmarkSpec(
    "tinymmlu", os.path.join(TINY, "tiny_bench.csv"), ("question", "choice0", "choice1")
)
SHIPPED = [
    ("gsm8k", ("question", "answer")),
    ("hellaswag", ("ctx", "endings")),
    ("humaneval", ("prompt", "canonical_solution")),
    ("mmlu", ("question", "choices")),
]
SHIPPED_FILES = {
    "gsm8k": "gsm8k_test_part1.jsonl",
    "hellaswag": "hellaswag_val_sample_part1.jsonl",
    "humaneval": "humaneval_part1.jsonl",
    "mmlu": "mmlu_test_sample.jsonl",
}


def _tiny_index(n: int = 13) -> NGramIndex:
    return load_index(DecontamSpec(n, (TINY_MATH, TINY_MMLU)))


def test_index_matches_reformatted_passages():
    index = _tiny_index()
    assert index.items == {"tinymath": 3, "tinymmlu": 1} and index.short_items == {"tinymath": 1}
    # punctuation, case, line breaks and numbers differ: still the same 13 words after normalisation
    quoted = (
        "Forum post: a BAKER fills 3 trays with 5 rolls each, and sells all but 9 of them at the "
        "Saturday market!\nHow many rolls did the baker sell? I think it's 271."
    )
    m = index.match(quoted)
    assert m is not None and m.benchmark == "tinymath" and m.item == "1" and len(m.ngram.split()) == 13
    assert m.n_matches == 15  # the 27 words of the item's question in a row: 15 windows of 13
    assert (
        index.match("The Danube flows through Budapest, the capital of Hungary, on its way to the sea.")
        is None
    )
    mmlu = index.match(
        "Quiz: the enzyme that unwinds the double helix ahead of the replication fork during DNA "
        "replication in bacteria is called helicase"
    )
    assert mmlu is not None and mmlu.benchmark == "tinymmlu" and mmlu.item == "1"


def test_batch_windows_never_cross_documents():
    index = _tiny_index()
    words = "a baker fills 12 trays with 24 rolls each and sells all but 17 of them".split()
    # the first 7 words end one document, the next 6 start the next: 13 in a row only across the boundary
    batch = ["Intro. " + " ".join(words[:7]), " ".join(words[7:13]) + " and more.", " ".join(words)]
    got = index.match_batch(batch)
    assert got[0] is None and got[1] is None and got[2] is not None and got[2].benchmark == "tinymath"
    assert [index.match(t) for t in batch] == got


def test_agrees_with_datatrove_ngrams_decont_filter(tmp_path):
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer

    cfg = NGramsDecontConfig(n_grams=13, find_query_ngrams=True, find_overlap_ngrams=False)
    dt_filter = NGramsDecontFilter(index_folder=str(tmp_path), config=cfg)
    # datatrove 0.10.1 passes str to xxhash, which this xxhash release refuses; hash the UTF-8 bytes instead
    dt_filter.hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    # the indexer's constructor demands lighteval (to download tasks); its compute_hashes needs only these three
    indexer = SimpleNamespace(config=cfg, tokenizer=dt_filter.tokenizer, hash_func=dt_filter.hash_func)
    dt_filter._index_hashes = {
        h: "tinymath"
        for _, text in read_items("tinymath", TINY_MATH.path, TINY_MATH.fields)
        for h in NGramsDecontIndexer.compute_hashes(indexer, text)
    }
    ours = load_index(DecontamSpec(13, (TINY_MATH,)))
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
    mine = [m is not None for m in ours.match_batch(docs)]
    assert mine == theirs and sum(mine) == 2


def test_number_only_ngrams_do_not_flag_numeric_tables():
    # GSM8K-style arithmetic normalises to "0 0 0 ..."; before this rule it flagged six Gutenberg table pages
    items = [
        *read_items("tinymath", TINY_MATH.path, TINY_MATH.fields),
        ("nums", "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 = 105"),
    ]
    hashes = BenchmarkHashes.from_items("tinymath", items)
    assert hashes.degenerate > 0 and hashes.item_ids[-1] == "nums"
    index = NGramIndex([hashes])
    table = "Table II. 1820 1821 1822 1823 1824 1825 1826 1827 1828 1829 1830 1831 1832 1833 1834"
    assert index.match(table) is None
    assert index.match("a baker fills 12 trays with 24 rolls each and sells all but 17 of them") is not None


def test_default_mixtures_name_shipped_hash_sets():
    for stage in ("core", "anneal", "long_context"):
        spec = load_mixture(stage).decontaminate
        assert spec.n == 13 and [b.name for b in spec.benchmarks] == [n for n, _ in SHIPPED]
        assert all(b.path == SHIPPED_DIR and not b.fields for b in spec.benchmarks)
    index = load_index(load_mixture("core").decontaminate)
    assert len(index) > 100_000 and index.items["humaneval"] == 82
    # the shipped HumanEval hashes catch a reformatted copy of HumanEval/0's prompt (public, MIT)
    text = (
        'Blog: def has_close_elements(numbers: List[float], threshold: float) -> bool: """ Check if in given '
        "list of numbers, are any two numbers closer to each other than given threshold."
    )
    m = index.match(text)
    assert m is not None and m.benchmark == "humaneval" and m.item == "HumanEval/0"


def test_benchmarks_add_then_a_mixture_names_it(tmp_path, caplog):
    bench_dir = str(tmp_path / "my-benchmarks")
    assert (
        main(["add", "tinymath", "--path", TINY_MATH.path, "--fields", "question,answer", "--dir", bench_dir])
        == 0
    )
    loaded = BenchmarkHashes.load(bench_dir, "tinymath")
    built = BenchmarkHashes.from_items("tinymath", read_items("tinymath", TINY_MATH.path, TINY_MATH.fields))
    assert np.array_equal(loaded.keys, built.keys) and np.array_equal(loaded.items, built.items)
    assert np.all(np.diff(loaded.keys.astype(np.float64)) >= 0) and loaded.keys.dtype == np.uint64
    out = str(tmp_path / "out")
    cc = docs_table("commoncrawl", 30, seed=1)
    texts = cc.column("text").to_pylist()
    texts[4] += (
        " Homework: a baker fills 12 trays with 24 rolls each and sells all but 17 of them at the market."
    )
    write_docs(out, "commoncrawl", cc.set_column(3, "text", pa.array(texts, pa.large_string())))
    path = write_mixture(
        str(tmp_path / "m.yaml"),
        {"commoncrawl": {"share": 1.0}},
        stage="mine",
        decontaminate={"n": 13, "benchmark_dirs": [bench_dir], "benchmarks": ["tinymath", "gsm8k"]},
    )
    m = build_stage(load_mixture(path=path), out)
    assert m["decontamination"]["removed_by_benchmark"] == {"tinymath": 1}
    rows = pq.read_table(os.path.join(out, "mixtures", "mine", "decontamination")).to_pylist()
    assert [r["id"] for r in rows] == ["commoncrawl/1/00004"] and rows[0]["item"] == "1"
    shards = pq.read_table(os.path.join(out, "mixtures", "mine", "shards"))
    assert shards.num_rows == 29 and "commoncrawl/1/00004" not in shards.column("id").to_pylist()
    # no benchmarks: the build still runs, and both the log and the manifest say decontamination is off
    path = write_mixture(str(tmp_path / "off.yaml"), {"commoncrawl": {"share": 1.0}}, stage="off")
    with caplog.at_level(logging.WARNING):
        m = build_stage(load_mixture(path=path), out)
    assert not m["decontamination"]["enabled"] and "OFF" in m["decontamination"]["warning"]
    assert any("decontamination is OFF" in r.getMessage() for r in caplog.records)


def test_sidecar_per_docs_file_is_reused_until_docs_or_benchmarks_change(tmp_path):
    out = str(tmp_path / "out")
    cc = docs_table("commoncrawl", 20, seed=2)
    texts = cc.column("text").to_pylist()
    texts[3] = (
        "Trivia: which river flows through the city of Budapest and divides it into the hilly western bank?"
    )
    docs = write_docs(out, "commoncrawl", cc.set_column(3, "text", pa.array(texts, pa.large_string())))
    index = _tiny_index()
    path, computed = decontaminate_file(docs, index)
    assert computed and path == sidecar_path(docs) and "decontam" in path
    assert pq.read_table(path).column("id").to_pylist() == ["commoncrawl/2/00003"]
    assert decontaminate_file(docs, index) == (path, False)
    assert decontaminate_file(docs, load_index(DecontamSpec(13, (TINY_MMLU,))))[1]  # other benchmarks
    assert pq.read_table(path).num_rows == 0


def _reference_matches(docs: list[str], benches: list[tuple[str, list[tuple[str, str]]]], n: int = 13):
    """An independent reference: datatrove's simplify_text, n-grams compared as strings (no hashing at all)."""
    from datatrove.utils.text import simplify_text

    grams: dict[str, tuple[str, str]] = {}
    for name, items in benches:
        for item, text in items:
            w = [x for x in simplify_text(text).split(" ") if x]
            for k in range(len(w) - n + 1):
                if len(set(w[k : k + n]) - {"0"}) >= MIN_DISTINCT_WORDS:
                    grams.setdefault(" ".join(w[k : k + n]), (name, item))
    out = []
    for t in docs:
        w = [x for x in simplify_text(t).split(" ") if x]
        hits = [(k, grams[g]) for k in range(len(w) - n + 1) if (g := " ".join(w[k : k + n])) in grams]
        out.append(None if not hits else (*hits[0][1], " ".join(w[hits[0][0] : hits[0][0] + n]), len(hits)))
    return out


@pytest.mark.integration
def test_shipped_hashes_rebuild_from_benchmarks_and_agree_with_a_string_reference_on_real_text():
    bench_dir = corpus_path("benchmarks")
    benches = []
    for name, fields in SHIPPED:
        items = list(read_items(name, os.path.join(bench_dir, SHIPPED_FILES[name]), fields))
        rebuilt = BenchmarkHashes.from_items(name, items)
        shipped = BenchmarkHashes.load(SHIPPED_DIR, name)
        assert np.array_equal(rebuilt.keys, shipped.keys) and np.array_equal(rebuilt.items, shipped.items)
        assert rebuilt.item_ids == shipped.item_ids
        benches.append((name, items))
    # real text: Gutenberg paragraphs and CommonCrawl page text, with real benchmark items planted in some of them
    docs = []
    for p in sorted(glob.glob(os.path.join(corpus_path("books"), "gutenberg-*.txt")))[:2]:
        text = open(p, encoding="utf-8", errors="replace").read()
        docs += [q for q in text.split("\n\n") if len(q.split()) > 30][:200]
    rng = random.Random(5)
    planted = {}
    for name, items in benches:
        for _item, text in rng.sample(items, 6):
            k = rng.randrange(len(docs))
            words = text.split()
            cut = " ".join(words[: rng.randint(10, len(words))])  # some too short to share 13 words
            docs[k] = docs[k] + "\n\nFrom a study guide: " + cut.upper() + " ..."
            planted[k] = name
    index = load_index(load_mixture("core").decontaminate)
    ours = [
        None if m is None else (m.benchmark, m.item, m.ngram, m.n_matches) for m in index.match_batch(docs)
    ]
    assert ours == _reference_matches(docs, benches)
    assert sum(m is not None for m in ours) >= 12 and {m[0] for m in ours if m} == {n for n, _ in SHIPPED}


@pytest.mark.integration
def test_stage_removes_planted_benchmark_passages_and_nothing_else(tmp_path):
    bench_dir = corpus_path("benchmarks")
    gsm = json.loads(open(os.path.join(bench_dir, "gsm8k_test_part1.jsonl")).readline())
    he = json.loads(open(os.path.join(bench_dir, "humaneval_part1.jsonl")).readline())
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
    write_docs(out, "commoncrawl", cc.set_column(3, "text", pa.array(texts, pa.large_string())))
    books = docs_table("books", len(paragraphs)).set_column(
        3, "text", pa.array(paragraphs, pa.large_string())
    )
    write_docs(out, "books", books)
    path = write_mixture(
        str(tmp_path / "m.yaml"),
        {"commoncrawl": {"share": 0.8}, "books": {"share": 0.2}},
        stage="decon",
        decontaminate={"n": 13, "benchmarks": [n for n, _ in SHIPPED]},
    )
    m = build_stage(load_mixture(path=path), out)
    report = pq.read_table(os.path.join(out, "mixtures", "decon", "decontamination")).to_pylist()
    removed = {r["id"]: r for r in report}
    assert set(removed) == {"commoncrawl/5/00010", "commoncrawl/5/00020"}
    assert removed["commoncrawl/5/00010"]["benchmark"] == "gsm8k"
    assert removed["commoncrawl/5/00020"]["benchmark"] == "humaneval"
    assert all(len(r["ngram"].split()) == 13 for r in report)
    shard_ids = set(
        pq.read_table(os.path.join(out, "mixtures", "decon", "shards"), columns=["id"])
        .column("id")
        .to_pylist()
    )
    assert not shard_ids & set(removed) and len(shard_ids) > 50
    assert m["decontamination"]["removed"] == 2 and m["decontamination"]["removed_by_benchmark"]["gsm8k"] == 1
    by = {s["name"]: s for s in m["sources"]}
    assert by["books"]["contaminated_documents"] == 0
    assert by["books"]["available_documents"] == len(paragraphs)


def test_batch_words_and_window_hashes_equal_the_plain_forms():
    from dedup.text import words_of
    from mixtures.decontam import _MULT, batch_words, window_hashes

    texts = [
        'Plain ASCII: 3.14 apples, 1,000 pears; x_y-z (a/b) "quoted"\tTAB\x1cFS\x1fUS\r\nend',
        "Ünïcödé café — naïve: ٣٫١٤ and ①②, \u2003em-space\u2028line\x85nel\u3000ideographic",
        "",
        None,
        "   ",
        "ΑΒΓ δεζ; Greek question mark\u037e and ano teleia\u0387 done",
        *docs_table("books", 20, seed=9).column("text").to_pylist(),
    ]
    words, lengths = batch_words(texts)
    expected = [words_of(t) if t else [] for t in texts]
    assert lengths.tolist() == [len(w) for w in expected]
    assert words.to_pylist() == [w for ws in expected for w in ws]
    rng = np.random.default_rng(0)
    wh = rng.integers(0, 2**63, size=200, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    for n in (1, 2, 5, 8, 13, 16):
        horner = np.zeros(len(wh) - n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n):
                horner = horner * _MULT + wh[j : j + len(horner)]
        assert np.array_equal(window_hashes(wh, n), horner), n
    assert len(window_hashes(wh[:5], 13)) == 0


def test_benchmark_entries_in_yaml_are_checked_with_messages_that_say_what_to_do(tmp_path):
    from mixtures.spec import MixtureError, parse_mixture

    base = {"sources": {"books": {"share": 1.0}}}
    spec = parse_mixture(
        {
            **base,
            "decontaminate": {
                "benchmarks": [
                    "mmlu",
                    {"name": "tiny", "path": TINY_MATH.path, "fields": ["question", "answer"]},
                ]
            },
        }
    ).decontaminate
    assert [(b.name, b.fields) for b in spec.benchmarks] == [("mmlu", ()), ("tiny", ("question", "answer"))]
    assert load_index(spec).items == {"mmlu": 1331, "tiny": 3}
    with pytest.raises(
        MixtureError, match=r"benchmark 'mybench' is not a known hash set .*winnow benchmarks add"
    ):
        parse_mixture({**base, "decontaminate": {"benchmarks": ["gsm8k", "mybench"]}})
    with pytest.raises(MixtureError, match="needs both path and fields"):
        parse_mixture({**base, "decontaminate": {"benchmarks": [{"name": "x", "path": TINY_MATH.path}]}})
    with pytest.raises(ValueError, match="holds 13-gram hashes but decontaminate.n is 8"):
        load_index(parse_mixture({**base, "decontaminate": {"n": 8, "benchmarks": ["gsm8k"]}}).decontaminate)
