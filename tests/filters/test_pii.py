"""PII redaction (filters/pii.py): datatrove's e-mail and IP replacements exactly, phone numbers, counts and the
directory-page rule of the CommonCrawl recipe."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from filters.pii import PHONE_REPLACEMENT, PIIRedact
from pipelines.runner import run_recipe
from tests.helpers.ops_hostile import _warc
from tests.pipelines.sources.test_commoncrawl import recipe

TEXTS = [
    "For questions about the survey write to maria.lopez@ucm.es or to the office at survey-office@ucm.es.",
    "The mirror at 151.101.1.69 was down; the internal host 10.0.0.12 and 127.0.0.1 were fine.",
    "Contact: j.smith+news@example.co.uk, backup jsmith@[192.168.0.1], and 8.8.8.8 / 1.1.1.1 / 9.9.9.9 again 8.8.4.4",
    "Version 1.2.3 was released on 2024-11-30; no address here, just text about rivers and 300.1.2.3.",
    "Emails: a@b.io c@d.io e@f.io g@h.io - cycling through datatrove's two placeholders within one page.",
]


def test_email_and_ip_replacements_equal_datatrove_per_document():
    from datatrove.pipeline.formatters.pii import PIIFormatter

    step = PIIRedact(phones=False)
    step.setup()
    for text in TEXTS:
        assert step.redact(text)[0] == PIIFormatter().format(text)  # a fresh formatter: its cycle starts per page
    assert step.redact(TEXTS[0])[1] == 2 and step.redact(TEXTS[1])[1] == 1  # private IPs are not personal data


def test_phone_numbers_and_what_is_not_one():
    step = PIIRedact()
    step.setup()
    text, n, _ = step.redact("Call +1 (415) 555-2671 or 030 1234 5678; fax 06-12-34-56-78.")
    assert n == 3 and text.count(PHONE_REPLACEMENT) == 3 and "555-2671" not in text
    calm = "On 2024-11-30 at 12:30, 8 000 000 people saw version 10.4.2; the IP 192.168.1.10 stays."
    assert step.redact(calm) == (calm, 0, 0)


def test_the_step_adds_counts_and_rewrites_text():
    step = PIIRedact()
    batch = pa.table({"id": ["a", "b", "c"], "text": [TEXTS[0], "Nothing personal in this line.", ""]})
    result = step(batch)
    assert result.table.column("pii_count").to_pylist() == [2, 0, 0]
    assert result.changed == 1
    assert "maria.lopez" not in result.table.column("text")[0].as_py()
    fractions = result.table.column("pii_fraction").to_pylist()
    assert 0.2 < fractions[0] < 0.4 and fractions[1] == 0.0 and fractions[2] == 0.0


def test_a_directory_page_is_rejected_and_an_article_keeps_its_text_redacted(tmp_path):
    people = "".join(
        f"<tr><td>Dr. Person {i}</td><td>person{i}@physics.example.edu</td><td>+44 20 7946 {1000 + i}</td></tr>"
        for i in range(40)
    )
    directory = f"<html><body><h1>Staff directory</h1><table>{people}</table></body></html>".encode()
    article = (
        b"<html><head><title>Floods</title></head><body><article>"
        b"<p>The river rose again on Tuesday night, and by morning the water had reached the steps of the old mill.</p>"
        b"<p>Town councillors met at noon to discuss the flood defences that were built after the storm of 2013. "
        b"Most residents said the new walls had held, although several cellars near the bridge were flooded.</p>"
        b"<p>Farmers upstream reported that fields planted with winter wheat were under half a metre of water, "
        b"and that it would take weeks before the soil was dry enough to be worked again.</p>"
        b"<p>The Environment Agency expects the level to fall slowly over the weekend if no more rain arrives. "
        b"Volunteers from the rowing club helped an elderly couple leave their cottage by boat.</p>"
        b"<p>Readers with photographs of the flood can send them to newsdesk@riverside-gazette.co.uk.</p>"
        b"</article></body></html>"
    )
    warc = tmp_path / "pii.warc.gz"
    warc.write_bytes(_warc([("directory", directory), ("article", article)], urn="pii"))
    out = str(tmp_path / "out")
    # a directory page also fails the prose rules and the token-KL cut, which run first: they are off here, so the
    # PII rule is what decides
    heuristics_off = {n: {"enabled": False} for n in ("gopher_rep", "gopher", "c4", "fineweb", "token_kl_filter")}
    run_recipe(recipe(steps=heuristics_off), str(warc), out, executor="local", progress=False)
    docs = {d["id"]: d for d in pq.read_table(os.path.join(out, "commoncrawl", "docs")).to_pylist()}
    rejected = {r["id"]: r for r in pq.read_table(os.path.join(out, "commoncrawl", "rejected")).to_pylist()}
    kept = docs["urn:pii:article"]
    assert "newsdesk@riverside-gazette.co.uk" not in kept["text"] and kept["pii_count"] == 1
    directory_row = rejected["urn:pii:directory"]
    assert (directory_row["rejected_by"], directory_row["reason"]) == ("pii_filter", "pii_filter:above_max")
    assert directory_row["pii_fraction"] > 0.2 and directory_row["pii_count"] >= 80
