"""CommonCrawl steps on tiny tables: extraction limits, language ID and its filter, WARC charset sniffing."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from filters.extract import ExtractionTimeout, ExtractText, time_limit
from filters.langid import LanguageFilter, LanguageID
from pipelines.core.schema import CORE_SCHEMA, table_from_rows
from pipelines.readers.warc import decode_html, sniff_charset

SCHEMA = pa.schema(list(CORE_SCHEMA) + [pa.field("content_format", pa.string())])
ARTICLE = (
    "<html><body><article><h1>Lighthouses</h1>"
    + "".join(
        f"<p>Lighthouse keeper number {i} wrote in the log that the lamp burned through the storm and the ships passed "
        f"the rocks safely before dawn.</p>"
        for i in range(8)
    )
    + "</article></body></html>"
)


def batch(rows):
    return table_from_rows([{"source": "t", **r} for r in rows], SCHEMA)


def test_extract_rewrites_html_and_passes_wet_text_through():
    t = batch(
        [
            {"id": "a", "text": ARTICLE, "content_format": "html"},
            {"id": "b", "text": "already plain text from a WET record", "content_format": "text"},
            {"id": "c", "text": "   ", "content_format": "text"},
        ]
    )
    res = ExtractText()(t)
    out = res.table.column("text").to_pylist()
    assert out[0].startswith("Lighthouses") and "<p>" not in out[0]
    assert out[1] == "already plain text from a WET record"
    assert list(res.reasons) == [None, None, "extract:empty"] and res.changed == 1


def test_extract_caps_size_and_time(monkeypatch):
    import trafilatura

    def slow_extract(*args, **kwargs):  # the limit counts CPU time: burn it, as a pathological page does
        end = time.thread_time() + 2
        while time.thread_time() < end:
            pass
        return "never"

    t = batch(
        [
            {"id": "big", "text": ARTICLE * 50, "content_format": "html"},
            {"id": "slow", "text": ARTICLE, "content_format": "html"},
        ]
    )
    monkeypatch.setattr(trafilatura, "extract", slow_extract)
    res = ExtractText(max_html_bytes=len(ARTICLE) * 10, timeout_s=0.2)(t)
    assert list(res.reasons) == ["extract:html_too_large", "extract:timeout"]
    assert (
        res.table.column("text").to_pylist()[1] == ARTICLE
    )  # the page is kept, as a rejected row, unchanged


def test_time_limit_restores_the_previous_alarm():
    with pytest.raises(ExtractionTimeout), time_limit(0.05):
        while True:
            pass
    with time_limit(0.5):  # a fresh limit works and does not fire after the block
        pass
    end = time.thread_time() + 0.6
    while time.thread_time() < end:
        pass


def test_language_id_and_filter_reasons():
    rows = [
        {"id": "en", "text": "The weather was cold and the children stayed inside to read books all day."},
        {"id": "de", "text": "Das Wetter war kalt und die Kinder blieben den ganzen Tag drinnen und lasen."},
        {"id": "num", "text": "1234 5678 90 12 34"},
    ]
    t = LanguageID()(table_from_rows([{"source": "t", **r} for r in rows], CORE_SCHEMA)).table
    langs = t.column("lang").to_pylist()
    assert langs[:2] == ["en", "de"]
    reasons = LanguageFilter(languages=["en"], threshold=0.5)(t).reasons
    assert reasons[0] is None and reasons[1] == "lang:not_en"
    assert reasons[2] in ("lang:not_en", "lang:low_score")
    assert LanguageFilter(languages=[], threshold=0.0)(t).reasons == [None, None, None]


def test_charset_comes_from_header_then_meta_then_detection():
    assert sniff_charset("text/html; charset=EUC-JP", b"")[0] == "euc_jp"
    assert sniff_charset(None, b"<html><head><meta charset='windows-1252'>")[0] == "cp1252"
    assert sniff_charset("text/html; charset=bogus-42", b"") == ["utf-8"]
    french = (
        "<p>Le caf\u00e9 de la gare ouvre \u00e0 sept heures. On y sert une cr\u00e8me br\u00fbl\u00e9e "
        "c\u00e9l\u00e8bre, des cr\u00eapes et du th\u00e9 ; les employ\u00e9s sont tr\u00e8s "
        "aimables et la fen\u00eatre donne sur le quai o\u00f9 arrivent les trains.</p>"
    )
    text, cs = decode_html("text/html", french.encode("latin-1"))  # undeclared: found by detection
    assert text == french and cs != "utf-8"
    jp = "<p>\u65e5\u672c\u8a9e\u306e\u30da\u30fc\u30b8\u3067\u3059</p>".encode("euc_jp")
    assert decode_html("text/html; charset=EUC-JP", jp) == (jp.decode("euc_jp"), "euc_jp")


def test_http_block_is_parsed_for_any_target_uri(tmp_path):
    """warcio parses HTTP headers only for http(s) URIs; a response with another URI is still a page."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from pipelines.readers.warc import WarcReader

    path = tmp_path / "odd.warc.gz"
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for uri, status in (("urn:example:page", "200 OK"), ("hard::odd.html", "404 Not Found")):
            http = StatusAndHeaders(
                status, [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            w.write_record(
                w.create_warc_record(uri, "response", payload=io.BytesIO(ARTICLE.encode()), http_headers=http)
            )
        w.write_record(
            w.create_warc_record(
                "dns:example.org", "response", payload=io.BytesIO(b"1.2.3.4"), warc_content_type="text/dns"
            )
        )
    items = list(WarcReader().read(str(path)))
    docs = [i for i in items if isinstance(i, dict)]
    assert [d["url"] for d in docs] == ["urn:example:page"]
    assert docs[0]["text"] == ARTICLE and docs[0]["charset"] == "utf-8"
    assert sorted(i.reason for i in items if not isinstance(i, dict)) == [
        "skip:http_4xx",
        "skip:no_http_headers",
    ]


def _real_texts() -> list[str]:
    """Real web text: the dolma CommonCrawl sample in ../shared (when present) and the quality fixtures."""
    import json
    import os

    from classifiers.corpora import jsonl_docs
    from tests.helpers.paths import FIXTURES, SHARED

    out = [
        d.text
        for f in ("reference.jsonl", "web.jsonl")
        for d in jsonl_docs(os.path.join(FIXTURES, "quality", f), "x")
    ]
    path = os.path.join(SHARED, "corpus", "commoncrawl", "text", "allenai--dolma", "cc_en_head-0091.jsonl")
    if os.path.exists(path):
        out += [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    return out


def test_gopher_ngram_helpers_equal_datatrove_on_real_words_and_edge_cases():
    from filters.patches import gopher_speedups as fast
    from filters.patches.word_tokenizer import shared_word_tokenizer

    orig = fast._ORIGINAL
    tok = shared_word_tokenizer("en")
    cases = [tok.word_tokenize(t) for t in _real_texts()]
    cases += [
        ["ab", "c", "x", "a", "bc", "x", "ab", "c"],  # "".join collides across word boundaries: ab|c == a|bc
        ["a b", "c", "a", "b c", "a b", "c"],  # words with spaces: " ".join is not injective, fall back
        ["the", "cat", "the", "dog", "the", "cat", "the", "dog"],
        ["a\ud800", "b", "a\ud800", "b", "c", "a\ud800", "b"],  # lone surrogates: Arrow cannot hold them
        ["x", "y", "z", "y", "x", "z", "x", "y"],  # ties between 2-grams: the first seen wins
        ["", "a", "", "a", ""],
        ["solo"] * 40,
    ]
    checked = 0
    for words in cases:
        for n in (2, 3, 4):
            if len(words) >= n:
                assert fast.find_top_duplicate(fast.get_n_grams(words, n)) == orig["find_top_duplicate"](
                    orig["get_n_grams"](words, n)
                ), (words[:12], n)
                checked += 1
        for n in range(5, 11):
            assert fast.find_all_duplicate(words, n) == orig["find_all_duplicate"](words, n), (words[:12], n)
    assert checked > 100
    # plain lists (someone calling datatrove's API directly after install) still work
    assert fast.find_top_duplicate(["a b", "a b", "c d"]) == orig["find_top_duplicate"](["a b", "a b", "c d"])


def test_spacy_is_imported_without_torch_and_torch_stays_importable():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from filters.patches.word_tokenizer import shared_word_tokenizer\n"
        "words = shared_word_tokenizer('en').word_tokenize('The cat sat on the mat, twice.')\n"
        "assert words == ['The', 'cat', 'sat', 'on', 'the', 'mat', ',', 'twice', '.'], words\n"
        "assert 'spacy' in sys.modules and 'torch' not in sys.modules\n"
        "import torch\n"
        "assert torch.ones(2).sum().item() == 2.0\n"
    )
    from tests.helpers.paths import REPO

    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_word_cache_is_per_input():
    from filters.heuristics import GopherQuality, GopherRepetition
    from filters.patches.word_tokenizer import shared_word_tokenizer

    story = (
        "The committee met on {} to review the budget for the coming year. Members discussed the cost of repairs to "
        "the old library, which has been closed since the storm in March.\nAfter a long debate, they agreed to fund "
        "the work in two stages, starting with the roof and the heating system."
    )
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "the holiday"]
    # more documents than datatrove's own lru_cache(5) of splits holds: the reuse below is the shared cache's
    batch = table_from_rows(
        [{"id": d, "source": "commoncrawl", "text": story.format(d)} for d in days], CORE_SCHEMA
    )
    rep, qual = GopherRepetition(), GopherQuality()
    tok = shared_word_tokenizer("en")
    rep.start_input("first.warc.gz")
    rep(batch)
    before = tok.hits
    qual(batch)
    assert len(tok.cache) == len(days) and tok.hits - before >= len(days) - 5
    rep.start_input("next.warc.gz")  # a new input never reuses the previous input's splits
    assert not tok.cache
