"""Dedup partitioned by language (``partition_by: lang``): pages of two languages that share a site's markup and
boilerplate never dedup each other, while duplicates within one language still go."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from dedup.line_stage import LineDedupStage
from dedup.minhash import MinHashConfig
from dedup.workflow import find_near_duplicates
from pipelines.core.corpus_stage import run_stage
from pipelines.core.schema import CORE_SCHEMA
from pipelines.sources.commoncrawl import with_language_partitions
from tests.helpers.sources import write_input

# one shop's template in two languages: the same menu, footer and spec lines on every page
BOILERPLATE = [
    "Home | Shop | Blog | FAQ",
    "© 2024 Nordlicht Outdoor GmbH",
    "SKU: NL-4471 | EAN 4006381333931",
]
BODIES = {
    "de": [
        "Der Rucksack fasst 28 Liter und hat ein separates Fach für die Trinkblase.",
        "Die Schultergurte sind gepolstert und lassen sich in der Höhe verstellen.",
        "Bei Regen schützt eine integrierte Hülle den Inhalt zuverlässig vor Nässe.",
        "Wir liefern innerhalb von drei Werktagen, die Rücksendung ist kostenlos.",
    ],
    "ja": [
        "このリュックは容量二十八リットルで、ハイドレーション用の独立した収納があります。",
        "ショルダーストラップにはクッションが入っており、高さを調節できます。",
        "雨の日には内蔵のレインカバーが中身をしっかり守ります。",
        "三営業日以内に発送し、返品の送料は無料です。",
    ],
}


def write_source(root: str) -> None:
    """A written CommonCrawl-like source: 4 German and 4 Japanese pages of one shop, one input file."""
    rows = [
        {
            "id": f"{lang}-{i}",
            "source": "commoncrawl",
            "text": "\n".join([BOILERPLATE[0], body, *BOILERPLATE[1:]]),
            "lang": lang,
        }
        for lang, bodies in BODIES.items()
        for i, body in enumerate(bodies)
    ]
    write_input(root, "input00", rows, CORE_SCHEMA.append(pa.field("lang", pa.string())))


def texts_after(root: str, **settings) -> dict[str, str]:
    run_stage(LineDedupStage.from_config("line_dedup", {"max_count": 6, "bucket_docs": 0, **settings}), root)
    docs = pq.read_table(os.path.join(root, "docs")).to_pylist()
    return {d["id"]: d["text"] for d in docs}


def test_boilerplate_lines_count_per_language(tmp_path):
    """8 copies of each boilerplate line: over LLaMA-3's 6 across languages, 4 per language when partitioned."""
    write_source(str(tmp_path / "mixed"))
    whole = texts_after(str(tmp_path / "mixed"))
    assert all(
        BOILERPLATE[0] not in t for t in whole.values()
    )  # one count: the German pages remove Japanese lines

    write_source(str(tmp_path / "by_lang"))
    per_lang = texts_after(str(tmp_path / "by_lang"), partition_by="lang")
    assert all(t.split("\n")[0] == BOILERPLATE[0] and t.endswith(BOILERPLATE[-1]) for t in per_lang.values())


def test_boilerplate_lines_still_go_within_one_language(tmp_path):
    write_source(str(tmp_path / "src"))
    kept = texts_after(str(tmp_path / "src"), partition_by="lang", max_count=3)
    assert all(BOILERPLATE[0] not in t for t in kept.values())  # 4 copies per language > 3
    assert kept["ja-0"] == BODIES["ja"][0] and kept["de-3"] == BODIES["de"][3]


def test_minhash_never_pairs_pages_of_two_languages(tmp_path):
    """A spec sheet whose text is the same in both language versions but for one line: near duplicates across
    languages unless partitioned; a true duplicate within one language is still found."""
    specs = " ".join(
        f"Modell NL-{n} Gewicht {n * 7} g Volumen {n % 40} l Material Polyamid 210D" for n in range(40)
    )
    docs = {
        "id": ["de-spec", "ja-spec", "ja-spec-copy"],
        "text": [specs + "\nTechnische Daten", specs + "\n仕様", specs + "\n仕様"],
        "lang": ["de", "ja", "ja"],
    }
    os.makedirs(tmp_path / "docs")
    pq.write_table(pa.table(docs), tmp_path / "docs" / "a.parquet")

    def pairs(**settings) -> set[str]:
        cfg = MinHashConfig(executor="local", **settings)
        res = find_near_duplicates([str(tmp_path / "docs")], str(tmp_path / f"w{len(settings)}"), cfg)
        return set(res.duplicates.column("id").to_pylist())

    assert pairs() == {"de-spec", "ja-spec", "ja-spec-copy"}
    assert pairs(partition_by="lang") == {"ja-spec", "ja-spec-copy"}


def test_partition_by_auto_follows_the_language_filter():
    from pipelines.sources.registry import build_recipe, deep_merge, load_config

    def resolved(languages):
        config = deep_merge(load_config("commoncrawl"), {"steps": {"lang_filter": {"languages": languages}}})
        stages = with_language_partitions(config)["corpus_stages"]
        return stages["minhash"]["partition_by"], stages["line_dedup"]["partition_by"]

    assert resolved(["en"]) == (None, None)  # the shipped default: one corpus, as before
    assert resolved(["all"]) == ("lang", "lang")
    assert resolved(["en", "de"]) == ("lang", "lang")
    # the recipe's stages get it (the shipped multilingual example sets it explicitly)
    config = deep_merge(load_config("commoncrawl"), {"steps": {"lang_filter": {"languages": ["all"]}}})
    stages = {s.name: s for s in build_recipe("commoncrawl", config).corpus_stages}
    assert stages["minhash"].config().partition_by == "lang"
    assert stages["minhash"].config().tokenize == "auto"  # Chinese, Japanese, Thai shingled by character
    assert stages["line_dedup"].config().partition_by == "lang"


def test_per_input_step_counts_per_language_and_refuses_a_batch_without_lang():
    import pytest

    from dedup.lines import LineDedup

    rows = [
        (f"{lang}-{i}", "\n".join([BOILERPLATE[0], body]), lang)
        for lang, b in BODIES.items()
        for i, body in enumerate(b)
    ]
    batch = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows], "lang": [r[2] for r in rows]})
    # max_count 3: the menu's 4th copy goes in one count over 8 pages; per language the 4th copy of each language
    whole = LineDedup(max_count=3)(batch).table.column("text").to_pylist()
    per_lang = LineDedup(max_count=3, partition_by="lang")(batch).table.column("text").to_pylist()
    assert sum(BOILERPLATE[0] in t for t in whole) == 3
    assert sum(BOILERPLATE[0] in t for t in per_lang) == 6
    with pytest.raises(ValueError, match="no such column.*corpus_stages.line_dedup.partition_by: lang"):
        LineDedup(partition_by="lang")(batch.drop_columns(["lang"]))


def test_cli_line_counts_partitioned_by_language(tmp_path, capsys):
    """`winnow dedup lines --partition-by lang`: 4 copies of the menu per language, 8 in all; the counts-mode step
    that reads the counts (max_count 6) drops the menu only when it was counted as one corpus."""
    import pytest

    from dedup.lines import LineDedup
    from tests.helpers.cli import command

    write_source(str(tmp_path / "src"))
    docs = pq.read_table(tmp_path / "src" / "docs")
    dedup_main = command("dedup")
    steps = {}
    for name, extra in (("whole", []), ("by_lang", ["--partition-by", "lang"])):
        counts = str(tmp_path / name)
        argv = ["lines", "--input", str(tmp_path / "src" / "docs"), "--counts", counts, "--bucket-docs", "0"]
        assert dedup_main([*argv, "--executor", "local", *extra]) == 0
        assert json.loads(capsys.readouterr().out)["settings"].get("partition_by") == (
            extra[1] if extra else None
        )
        steps[name] = LineDedup(max_count=6, mode="counts", counts_dir=counts)
    assert not any(BOILERPLATE[0] in t for t in steps["whole"](docs).table.column("text").to_pylist())
    assert all(BOILERPLATE[0] in t for t in steps["by_lang"](docs).table.column("text").to_pylist())
    with pytest.raises(ValueError, match="--partition-by lang.*line_dedup corpus stage"):
        steps["by_lang"](docs.drop_columns(["lang"]))
