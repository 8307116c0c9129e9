"""Code and math pages (issue 18 parts 0-1): the shipped classifier routes realistic pages, routed pages skip the
prose rules in a real CommonCrawl run, and a user's own label file retrains the model."""

from __future__ import annotations

import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classifiers.domains import DomainRules, DomainScore, train_domains
from filters.extract import ExtractText
from pipelines.core.process import StepStats, run_steps
from pipelines.runner import run_recipe
from pipelines.sources.registry import build_recipe, deep_merge, load_config
from tests.helpers.paths import FIXTURES, corpus_path
from tests.helpers.warc import warc_bytes

PAGES = os.path.join(FIXTURES, "domains")
EXPECTED = {"code_tutorial": "code", "math_proof": "math", "news_article": "prose"}


def _html(name: str) -> str:
    return open(os.path.join(PAGES, f"{name}.html"), encoding="utf-8").read()


def _extracted(names: list[str]) -> pa.Table:
    html = [_html(n) for n in names]
    table = pa.table({"id": names, "text": html, "content_format": ["html"] * len(html)})
    return ExtractText()(table).table


def test_shipped_model_routes_realistic_pages() -> None:
    names = sorted(EXPECTED)
    scored = DomainScore()(_extracted(names)).table
    got = dict(zip(names, scored.column("domain").to_pylist(), strict=True))
    assert got == EXPECTED
    probs = {
        n: (c, m)
        for n, c, m in zip(
            names, scored["code_prob"].to_pylist(), scored["math_prob"].to_pylist(), strict=True
        )
    }
    assert probs["code_tutorial"][0] > 0.9 and probs["code_tutorial"][1] < 0.1
    assert probs["math_proof"][1] > 0.9 and probs["math_proof"][0] < 0.1
    assert max(probs["news_article"]) < 0.1


def test_domain_rules_judge_only_code_and_math_pages() -> None:
    minified = "var a=function(){" + ";".join(f"x{i}=y{i}+{i}" for i in range(200)) + "};\n"
    table = pa.table(
        {
            "text": ["x = 1", minified, "Let $x>0$.", "Short prose.", _html("news_article")],
            "domain": ["code", "code", "math", "prose", None],
        }
    )
    reasons = DomainRules().process(table).reasons
    assert list(reasons) == ["code:too_short", "code:minified", "math:too_short", None, None]


def _cc_config(routing: bool) -> dict:
    from pipelines.sources.commoncrawl import without_models

    config = deep_merge(load_config("commoncrawl"), without_models())
    return deep_merge(
        config, {"steps": {"domains": {"enabled": routing}, "domain_rules": {"enabled": routing}}}
    )


@pytest.fixture(scope="module")
def routed_runs(tmp_path_factory):
    """One WARC with the three pages, run through the CommonCrawl recipe with the routing off and on."""
    folder = tmp_path_factory.mktemp("warc")
    names = sorted(EXPECTED)
    with open(folder / "pages.warc.gz", "wb") as f:
        f.write(warc_bytes([(n, _html(n).encode()) for n in names], urn="domains"))
    runs = {}
    for routing in (False, True):
        out = str(tmp_path_factory.mktemp(f"out-{routing}"))
        result = run_recipe(
            build_recipe("commoncrawl", _cc_config(routing)),
            str(folder),
            out,
            executor="local",
            progress=False,
        )
        docs = pq.read_table(os.path.join(out, "commoncrawl", "docs")).to_pylist()
        rejected = pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()
        runs[routing] = (result, docs, rejected)
    return runs


def _rid(name: str) -> str:
    return f"urn:domains:{name}"


def test_code_page_dropped_as_prose_survives_with_routing(routed_runs) -> None:
    _, docs, rejected = routed_runs[False]
    before = {r["id"]: r["reason"] for r in rejected}
    # judged as prose, the tutorial's code fails the word rules (or language ID's confidence)
    assert before[_rid("code_tutorial")].split(":")[0] in ("lang", "gopher", "gopher_rep", "c4", "fineweb")
    assert _rid("news_article") in {d["id"] for d in docs}

    _, docs, rejected = routed_runs[True]
    kept = {d["id"]: d for d in docs}
    assert kept[_rid("code_tutorial")]["domain"] == "code"
    assert kept[_rid("news_article")]["domain"] == "prose"
    assert not {_rid("code_tutorial"), _rid("news_article")} & {r["id"] for r in rejected}
    assert kept[_rid("code_tutorial")]["code_prob"] > 0.5


def test_math_page_is_routed_and_read_equals_kept_plus_rejected(routed_runs) -> None:
    for routing, (_, docs, rejected) in routed_runs.items():
        ids = [d["id"] for d in docs] + [r["id"] for r in rejected]
        assert sorted(ids) == sorted(_rid(n) for n in EXPECTED), routing  # nothing lost, nothing twice
    _, docs, rejected = routed_runs[True]
    outcome = {d["id"]: d["domain"] for d in docs} | {r["id"]: r["reason"] for r in rejected}
    assert outcome[_rid("math_proof")] == "math"
    before = {r["id"]: r["reason"] for r in routed_runs[False][2]}
    assert before[_rid("math_proof")].split(":")[0] in ("lang", "gopher", "gopher_rep", "c4", "fineweb")


def test_user_label_file_retrains_the_model(tmp_path) -> None:
    """`__label__code|math|prose <text>` lines from real corpus text are enough to train a working router."""
    from classifiers.dataset import read_pieces
    from classifiers.domain_data import github_docs, stackexchange_docs

    code = [t for _, t in github_docs(corpus_path("github"))][:40]
    math = [
        t
        for _, t in stackexchange_docs(corpus_path("stackexchange", "jrfoster--spark-intro"))
        if t.count("$") >= 8
    ][:40]
    prose = [p.text for p in read_pieces(corpus_path("wikipedia"), 0)][:20]
    prose += [t for _, t in stackexchange_docs(corpus_path("stackexchange", "GonzaloHirsch--TP-XML"))][:20]
    path = tmp_path / "labels.txt"
    with open(path, "w", encoding="utf-8") as f:
        for label, texts in (("code", code), ("math", math), ("prose", prose)):
            f.writelines(f"__label__{label} {' '.join(t.split())}\n" for t in texts)
    record = train_domains([], [], [], str(tmp_path / "models"), labels=str(path))
    assert record["heldout"]["code"]["auc"] > 0.9 and record["heldout"]["math"]["auc"] > 0.9
    saved = json.load(open(tmp_path / "models" / "domains" / "quality.json"))
    assert saved["settings"]["labels"] == "labels.txt" and saved["train_pieces"]["code"] > 0
    model = str(tmp_path / "models" / "domains" / "model.ftz")
    scored = DomainScore(model_path=model)(_extracted(["code_tutorial", "math_proof", "news_article"])).table
    code, math, news = scored.to_pylist()
    # 40 lines per class make a rough model: the code page is code, and the proof is more math than the news
    assert code["domain"] == "code" and news["code_prob"] < 0.5
    assert math["math_prob"] > news["math_prob"]


def test_label_file_errors_name_the_line(tmp_path) -> None:
    from classifiers.domain_data import label_file_pieces

    path = tmp_path / "bad.txt"
    path.write_text("__label__code x = 1\n__label__poetry roses are red\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: unknown label 'poetry'"):
        label_file_pieces(str(path))


def test_real_warc_pages_by_domain() -> None:
    """On the real WARC samples every page gets a domain; most web pages are prose (logged for the report)."""
    files = sorted(
        glob.glob(os.path.join(corpus_path("commoncrawl", "warc"), "**", "*.warc.gz"), recursive=True)
    )
    from classifiers.corpora import warc_docs

    text = [d.text for f in files[:4] for d in warc_docs(f)]
    scored = DomainScore()(pa.table({"text": text})).table
    domains = scored.column("domain").to_pylist()
    assert len(domains) == len(text) > 20
    assert domains.count("prose") > len(domains) / 2
    kept, _ = run_steps([DomainRules()], scored, [StepStats("domain_rules", "filter")])
    assert kept.num_rows <= scored.num_rows


@pytest.mark.integration
def test_shipped_model_quality_is_reproduced_on_its_heldout_documents() -> None:
    """Re-read the training folders named in the MANIFEST, take the same by-document split, and re-measure."""
    from classifiers.dataset import split
    from classifiers.domain_data import LABELS, load_domain_pieces
    from classifiers.domains import DEFAULT_MODEL, measure_domains
    from filters.langid import load_fasttext

    se = "stackexchange"
    pieces = load_domain_pieces(
        [corpus_path("github")],
        [corpus_path("arxiv"), corpus_path(se, "jrfoster--spark-intro")],
        [corpus_path(x) for x in ("commoncrawl", "wikipedia")]
        + [corpus_path(se, "GonzaloHirsch--TP-XML"), corpus_path(se, "mattly--ssdug-graphql")],
    )
    _, held = split(pieces)
    record = json.load(open(os.path.join(os.path.dirname(DEFAULT_MODEL), "quality.json")))
    assert sorted({f"{LABELS[p.label]}:{p.kind}:{p.key}" for p in held}) == record["heldout_documents"]
    metrics = measure_domains(load_fasttext(DEFAULT_MODEL), held)
    for name in ("code", "math"):
        assert abs(metrics[name]["auc"] - record["heldout"][name]["auc"]) < 0.005, name
        assert metrics[name]["auc"] >= record["bar_auc"], name


def test_exempt_names_must_be_recipe_steps_and_math_keeps_language_id() -> None:
    from pipelines.sources.commoncrawl import without_models

    config = deep_merge(load_config("commoncrawl"), without_models())
    steps = {s.name: s for s in build_recipe("commoncrawl", config).steps}
    assert steps["gopher"].skip_domains == ["code", "math"] and steps["lang_filter"].skip_domains == ["code"]
    assert steps["dirty_filter"].skip_domains == [] and steps["pii_filter"].skip_domains == []
    bad = deep_merge(config, {"steps": {"domains": {"exempt": {"code": ["gopherr"]}}}})
    with pytest.raises(ValueError, match=r"exempt.code: unknown step\(s\) \['gopherr'\]"):
        build_recipe("commoncrawl", bad)


def test_a_forum_thread_or_price_list_is_not_routed_without_math_signs_or_code_syntax() -> None:
    from classifiers.domains import route

    assert route(0.99, 0.0, 0.5, 0.5, code_ok=False) == "prose"
    assert route(0.0, 0.99, 0.5, 0.5, math_ok=False) == "prose"
    assert route(0.9, 0.95, 0.5, 0.5) == "math" and route(0.95, 0.9, 0.5, 0.5) == "code"
    forum = "Reviewer: sprout - Subject: washed up.\nDownloaded 61 times. Average rating: 3 stars. Write a review!"
    scored = DomainScore()(
        pa.table({"text": [forum, _extracted(["math_proof"]).column("text")[0].as_py()]})
    ).table
    assert scored.column("domain").to_pylist() == ["prose", "math"]
