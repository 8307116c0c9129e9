"""The mixture build as executor tasks: a process pool and a Ray cluster give the local build's output, and a
build killed in its scan pass resumes from the sidecars it had written."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixtures.benchmarks import load_index
from mixtures.build import build_stage
from mixtures.decontam import sidecar_path as decontam_path
from mixtures.spec import BenchmarkSpec, DecontamSpec, load_mixture
from mixtures.tokens import sidecar_path as tokens_path
from pipelines.core.executor import LocalExecutor
from tests.helpers.mixture_data import docs_table, write_docs, write_mixture
from tests.helpers.paths import FIXTURES

TINY = os.path.join(FIXTURES, "mixtures", "tiny_bench.jsonl")
PLANTED = "commoncrawl/4/00007"


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> str:
    """Six docs files over three sources; one CommonCrawl page quotes a benchmark item."""
    out = str(tmp_path_factory.mktemp("curated"))
    cc = docs_table("commoncrawl", 240, seed=4)
    item = json.loads(open(TINY, encoding="utf-8").readline())
    texts = cc.column("text").to_pylist()
    texts[7] = "Homework help. " + item["question"] + " Answer: " + item["answer"]
    cc = cc.set_column(3, "text", pa.array(texts, pa.large_string()))
    for k in range(3):
        write_docs(out, "commoncrawl", cc.slice(80 * k, 80), f"cc-{k}")
    write_docs(out, "books", docs_table("books", 10, max_sentences=20), "books")
    wiki = docs_table("wikipedia", 150)
    write_docs(out, "wikipedia", wiki.slice(0, 75), "wiki-a")
    write_docs(out, "wikipedia", wiki.slice(75), "wiki-b")
    return out


def _mixture(folder: str, **top) -> str:
    sources = {
        "commoncrawl": {"share": 0.6, "max_epochs": 1.0},
        "books": {"share": 0.2, "max_epochs": 3.0},
        "wikipedia": {"share": 0.2, "rank_by": "lang_score", "top_fraction": 0.8},
    }
    decontaminate = {"n": 8, "benchmarks": [{"name": "tiny", "path": TINY, "fields": ["question", "answer"]}]}
    return write_mixture(
        os.path.join(folder, "mix.yaml"),
        sources,
        stage="dist",
        total_tokens=20000,
        shard_max_tokens=3000,
        decontaminate=decontaminate,
        **top,
    )


def _copy(curated: str, dest: str) -> str:
    shutil.copytree(curated, dest, ignore=shutil.ignore_patterns("mixtures", "tokens", "decontam"))
    return dest


def _outcome(output: str, manifest: dict) -> tuple[dict, dict]:
    """The manifest without where it ran, and the bytes of every output file by name."""
    stage = os.path.join(output, "mixtures", manifest["stage"])
    files = {
        os.path.relpath(p, stage): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(os.path.join(stage, "*", "*.parquet"))
    }
    return {k: v for k, v in manifest.items() if k != "execution"}, files


def test_process_pool_builds_what_the_local_build_does(curated, tmp_path):
    mix = _mixture(str(tmp_path))
    local_out, pool_out = _copy(curated, str(tmp_path / "local")), _copy(curated, str(tmp_path / "pool"))
    local = build_stage(load_mixture(path=mix), local_out, executor="local")
    pool = build_stage(load_mixture(path=mix), pool_out, executor="process", workers=2)
    assert local["execution"]["executor"] == "local" and pool["execution"]["executor"] == "process"
    assert _outcome(local_out, local) == _outcome(pool_out, pool)
    # what the build did: decontamination removed the planted page, several shard partitions, every source in
    by = {s["name"]: s for s in local["sources"]}
    assert local["decontamination"]["removed"] == 1 and by["commoncrawl"]["contaminated_documents"] == 1
    rows = pq.read_table(os.path.join(local_out, "mixtures", "dist", "shards")).to_pylist()
    assert PLANTED not in {r["id"] for r in rows} and {r["mix_source"] for r in rows} == set(by)
    assert local["shard_partitions"] > 1 and len(local["shards"]) >= local["shard_partitions"]
    assert sum(s["documents"] for s in local["shards"]) == len(rows) == local["documents"]
    assert by["wikipedia"]["candidate_documents"] == 120 and by["books"]["epochs"] > 1
    # the manifest fingerprints the docs from the listing: sizes and mtimes, no content hash
    fp = local["inputs"]["docs"]
    assert len(fp) == 6 and all(set(v) == {"bytes", "mtime_ns"} for v in fp.values())
    # shard files in name order hold the rows in shuffle-key order
    names = [s["file"] for s in local["shards"]]
    assert names == sorted(names)


def test_the_benchmark_index_travels_without_its_lookup_tables():
    """Tasks receive the index pickled (on Ray: one object-store copy): sorted keys and their items, not the
    4 MiB prefix bitmap or the word-hash cache, which are rebuilt on arrival."""
    item = json.loads(open(TINY, encoding="utf-8").readline())
    index = load_index(DecontamSpec(8, (BenchmarkSpec("tiny", TINY, ("question", "answer")),)))
    text = "Homework help. " + item["question"] + " Answer: " + item["answer"]
    found = index.match(text)  # fills the word-hash cache
    blob = pickle.dumps(index)
    assert found is not None and len(blob) < 200_000 < index._prefix.nbytes
    copy = pickle.loads(blob)
    assert copy.fingerprint == index.fingerprint and copy.match(text) == found
    assert copy.match("Nothing from any benchmark is quoted in this sentence at all.") is None


class KilledAfter(LocalExecutor):
    """Runs the first ``n`` items of the first map, then dies as a killed driver would (the rest never runs)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def map(self, fn, items, desc=""):
        for item in items[: self.n]:
            fn(item)
        raise KeyboardInterrupt("killed")


def test_a_killed_build_resumes_from_the_sidecars_it_wrote(curated, tmp_path):
    mix = _mixture(str(tmp_path))
    out = _copy(curated, str(tmp_path / "out"))
    docs = sorted(glob.glob(os.path.join(out, "*", "docs", "*.parquet")))
    with pytest.raises(KeyboardInterrupt):
        build_stage(load_mixture(path=mix), out, executor=KilledAfter(2))
    done = [d for d in docs if os.path.exists(tokens_path(d))]
    assert len(done) == 2 and all(os.path.exists(decontam_path(d)) for d in done)
    before = {d: (os.stat(tokens_path(d)).st_mtime_ns, os.stat(decontam_path(d)).st_mtime_ns) for d in done}
    resumed = build_stage(load_mixture(path=mix), out, executor="local")
    # the files scanned before the kill were not scanned again; the others were
    assert {
        d: (os.stat(tokens_path(d)).st_mtime_ns, os.stat(decontam_path(d)).st_mtime_ns) for d in done
    } == before
    assert all(os.path.exists(tokens_path(d)) and os.path.exists(decontam_path(d)) for d in docs)
    fresh_out = _copy(curated, str(tmp_path / "fresh"))
    fresh = build_stage(load_mixture(path=mix), fresh_out, executor="local")
    assert _outcome(out, resumed) == _outcome(fresh_out, fresh)
    assert not glob.glob(os.path.join(out, "mixtures", ".*tmp-*"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_cluster_spreads_the_tasks_over_two_nodes_with_the_local_output(curated, tmp_path):
    from tests.helpers.ops import ray_cluster, run_cli

    mix = _mixture(str(tmp_path))
    cluster_out = _copy(curated, str(tmp_path / "cluster"))
    args = ["mixture", "--mixture", mix, "--executor", "ray"]
    with ray_cluster([{"head_node": 1}, {"second_node": 1}]) as cluster:
        run = run_cli([*args, "--output", cluster_out], env=cluster.env, timeout=500)
    assert run.returncode == 0, run.stderr[-3000:]
    on_cluster = json.load(open(os.path.join(cluster_out, "mixtures", "dist", "manifest.json")))
    nodes = on_cluster["execution"]["nodes"]
    assert on_cluster["execution"]["executor"] == "ray"
    assert len(nodes["scan"]) == 2, f"every token/decontamination task ran on one node: {nodes}"
    local_out = _copy(curated, str(tmp_path / "local"))
    local = build_stage(load_mixture(path=mix), local_out, executor="local")
    assert _outcome(cluster_out, on_cluster) == _outcome(local_out, local)


def test_top_fraction_cut_through_equal_scores_takes_the_smaller_ids(tmp_path):
    """The driver holds no ids: documents tied at the cut have theirs read back, the smaller ids go in, as the
    SQL ``ORDER BY score DESC NULLS LAST, id`` did; NULL scores rank last."""
    out = str(tmp_path / "out")
    scores = [None if i % 7 == 0 else float(i % 4) for i in range(100)]
    table = docs_table("github", 100, seed=3, extra={"q": scores})
    write_docs(out, "github", table.slice(0, 50), "gh-a")
    write_docs(out, "github", table.slice(50), "gh-b")
    sources = {"github": {"share": 1.0, "rank_by": "q", "top_fraction": 0.3}}
    path = write_mixture(str(tmp_path / "m.yaml"), sources, stage="ties", executor="local")
    m = build_stage(load_mixture(path=path), out)
    rows = table.to_pylist()
    best = sorted(rows, key=lambda r: (r["q"] is None, -(r["q"] or 0), r["id"]))[:30]
    got = {r["id"] for r in pq.read_table(os.path.join(out, "mixtures", "ties", "shards")).to_pylist()}
    assert m["sources"][0]["candidate_documents"] == 30 and got == {r["id"] for r in best}
    assert len({r["q"] for r in best}) == 2  # the cut falls inside the q == 2 group: ties were broken by id


def test_a_predicate_on_the_text_reads_it_and_others_do_not_need_it(tmp_path):
    """Scan tasks leave the text column unread unless a predicate names it; one that does selects on real lengths."""
    out = str(tmp_path / "out")
    table = docs_table("wikipedia", 120, seed=5)
    write_docs(out, "wikipedia", table, "wiki")
    cut = sorted(len(t) for t in table.column("text").to_pylist())[60]
    sources = {"wikipedia": {"share": 1.0, "where": f"length(TEXT) >= {cut}"}}
    path = write_mixture(str(tmp_path / "m.yaml"), sources, stage="long", executor="local")
    m = build_stage(load_mixture(path=path), out)
    want = {r["id"] for r in table.to_pylist() if len(r["text"]) >= cut}
    got = {r["id"] for r in pq.read_table(os.path.join(out, "mixtures", "long", "shards")).to_pylist()}
    assert m["sources"][0]["candidate_documents"] == len(want) and got == want and 0 < len(want) < 120
