"""StackExchange: HTML → text, Q/A documents with numeric answer order, site discovery, archives, hostile input."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from filters.html_text import html_to_text
from filters.stackexchange import Answer, format_qa, order_answers, parse_tags
from pipelines.core.recipe import Skip
from pipelines.readers.stackexchange import StackExchangeReader, site_name
from tests.helpers.paths import FIXTURES, corpus_path
from tests.helpers.sources import run_source, run_source_peak_mb

SE_FIXTURES = os.path.join(FIXTURES, "stackexchange")
COOKING = os.path.join(SE_FIXTURES, "cooking.stackexchange.com", "Posts.xml")

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE posts [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<posts>
  <row Id="1" PostTypeId="1" Score="1" Title="t" Body="&lol9;" />
  <row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="&lol9;" />
</posts>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE posts [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<posts><row Id="1" PostTypeId="1" Score="1" Title="t" Body="&xxe;" /></posts>
"""


def _row(**attrs: object) -> str:
    from xml.sax.saxutils import quoteattr

    return "  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items()) + " />\n"


def _site(
    tmp_path, name: str, rows: list[str], head: str = '<?xml version="1.0" encoding="utf-8"?>\n'
) -> str:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    path = folder / "Posts.xml"
    path.write_text(head + "<posts>\n" + "".join(rows) + "</posts>\n", encoding="utf-8")
    return str(path)


def _read(path: str, **settings) -> tuple[list[dict], list[Skip]]:
    docs, skips = [], []
    for item in StackExchangeReader(**settings).read(path):
        (skips if isinstance(item, Skip) else docs).append(item)
    return docs, skips


# -- HTML → text -------------------------------------------------------------------------------------------------
def test_html_to_text_keeps_code_blocks_verbatim():
    html = "<p>Try this:</p>\n<pre><code>for i in range(3):\n    print(i)\n\n# done\n</code></pre>\n<p>Then run it.</p>"
    assert (
        html_to_text(html)
        == "Try this:\n\n```\nfor i in range(3):\n    print(i)\n\n# done\n```\n\nThen run it."
    )


def test_html_to_text_keeps_list_structure_nested_and_ordered():
    html = (
        '<ul><li>first</li><li>second<ul><li>inner <a href="x">link</a></li></ul></li></ul>'
        '<ol start="3"><li>three</li><li><p>four</p><p>continued</p></li></ol>'
    )
    assert html_to_text(html) == "- first\n- second\n  - inner link\n\n3. three\n4. four\n   continued"


def test_html_to_text_inline_code_quotes_entities_and_bad_markup():
    assert html_to_text("<p>Use <code>x.sort()</code> &amp; <em>done</em>.<br>Next</p>") == (
        "Use `x.sort()` & done.\nNext"
    )
    assert html_to_text("<blockquote><p>a</p><p>b</p></blockquote>") == "> a\n>\n> b"
    assert html_to_text("<p>unclosed <b>bold <script>alert(1)</script>") == "unclosed bold"
    assert html_to_text("") == "" and html_to_text(None) == ""


# -- Q/A format and order ----------------------------------------------------------------------------------------
def test_answers_sorted_by_numeric_score_not_string():
    answers = [Answer(2, 9, "nine"), Answer(3, 10, "ten"), Answer(4, -1, "minus"), Answer(5, 100, "hundred")]
    ordered = [a.score for a in order_answers(answers)]
    assert ordered == [100, 10, 9, -1]
    # the public ports' bug, for contrast: sorting the score strings puts "9" before "10" and "100"
    assert sorted(["9", "10", "-1", "100"], reverse=True)[0] == "9"


def test_format_qa_and_tags():
    text = format_qa("Title?", "Body.", [Answer(1, 3, "First."), Answer(2, 1, "Second.")])
    assert text == "Q: Title?\nBody.\n\nA: First.\n\nA: Second."
    assert parse_tags("<food-safety><stock>") == ["food-safety", "stock"]
    assert parse_tags("|discussion|homework|") == ["discussion", "homework"]
    assert parse_tags(None) == []


# -- reader on the fixtures --------------------------------------------------------------------------------------
def test_reader_joins_answers_in_numeric_order_with_metadata():
    docs, skips = _read(COOKING)
    by_id = {d["id"]: d for d in docs}
    assert set(by_id) == {
        "cooking.stackexchange.com:1",
        "cooking.stackexchange.com:7",
        "cooking.stackexchange.com:9",
    }
    stock = by_id["cooking.stackexchange.com:1"]
    assert stock["meta"]["answer_scores"] == [10, 9, 2, -1]
    assert stock["meta"]["answer_ids"] == [3, 2, 4, 5]
    assert stock["meta"]["accepted_answer_id"] == 3 and stock["meta"]["accepted_answer_present"]
    assert stock["meta"]["tags"] == ["food-safety", "stock", "refrigerator"]
    assert stock["meta"]["site"] == "cooking.stackexchange.com"
    assert stock["url"] == "https://cooking.stackexchange.com/questions/1"
    text = stock["text"]
    assert text.startswith("Q: How long can I keep homemade chicken stock in the fridge?\nI made a big pot")
    assert (
        text.index("A: The USDA says 3–4 days")
        < text.index("A: Three to four days")
        < text.index("A: I freeze")
    )
    assert "- divide it into shallow containers\n- put them in an ice bath" in text
    assert (stock["question_score"], stock["answer_count"], stock["best_answer_score"]) == (25, 4, 10)


def test_reader_answer_before_question_orphans_and_non_posts():
    docs, skips = _read(COOKING)
    flour = next(d for d in docs if d["id"].endswith(":7"))
    assert flour["answer_count"] == 1
    assert "```\ndef cups_to_grams(cups, density=125):\n    return cups * density\n```" in flour["text"]
    assert "1. 1 cup all-purpose flour = 125 g" in flour["text"]
    reasons = sorted((s.reason, s.count) for s in skips)
    assert reasons == [("skip:orphan_answer", 1), ("skip:tag_wiki", 1), ("skip:tag_wiki_excerpt", 1)]


def test_reader_scores_compare_as_numbers_in_a_large_group(tmp_path):
    rows = [_row(Id=1, PostTypeId=1, Score=0, Title="Q", Body="<p>q</p>")]
    scores = [9, 10, 100, 2, 11, -3, 1000, 99]
    rows += [
        _row(Id=10 + i, PostTypeId=2, ParentId=1, Score=s, Body=f"<p>s{s}</p>") for i, s in enumerate(scores)
    ]
    docs, _ = _read(_site(tmp_path, "x.stackexchange.com", rows))
    assert docs[0]["meta"]["answer_scores"] == sorted(scores, reverse=True)


def test_discover_takes_the_n_largest_sites(tmp_path):
    for name, n in (("small.example", 1), ("big.example", 40), ("mid.example", 10)):
        rows = [
            _row(Id=i, PostTypeId=1, Score=1, Title="t", Body="<p>" + "x" * 200 + "</p>") for i in range(n)
        ]
        _site(tmp_path, name, rows)
    (tmp_path / "mid.example" / "Comments.xml").write_text("<comments/>", encoding="utf-8")
    found = StackExchangeReader(max_sites=2).discover(str(tmp_path))
    assert [site_name(p) for p in found] == ["big.example", "mid.example"]
    assert len(StackExchangeReader(max_sites=None).discover(str(tmp_path))) == 3


def test_7z_site_archive_reads_like_the_folder(tmp_path):
    import py7zr

    archive = tmp_path / "cooking.stackexchange.com.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        z.write(COOKING, "Posts.xml")
    assert StackExchangeReader().discover(str(tmp_path)) == [str(archive)]
    from_folder, _ = _read(COOKING)
    from_archive, _ = _read(str(archive))
    assert [d["id"] for d in from_archive] == [d["id"] for d in from_folder]
    assert [d["text"] for d in from_archive] == [d["text"] for d in from_folder]


def test_7z_bomb_and_missing_posts_are_refused(tmp_path):
    import py7zr

    bomb = tmp_path / "bomb.7z"
    with py7zr.SevenZipFile(bomb, "w") as z:
        z.writestr(b"<posts>" + b" " * 30_000_000 + b"</posts>", "Posts.xml")
    with pytest.raises(Exception, match="ratio"):
        _read(str(bomb))
    with pytest.raises(Exception, match="max_unpacked_bytes"):
        _read(str(bomb), max_unpacked_bytes=1000, max_ratio=1e9)
    users = tmp_path / "users.7z"
    with py7zr.SevenZipFile(users, "w") as z:
        z.writestr(b"<users/>", "Users.xml")
    with pytest.raises(Exception, match="no Posts.xml"):
        _read(str(users))


# -- hostile XML ---------------------------------------------------------------------------------------------------
def test_entity_bomb_and_external_entity_are_refused_without_expansion(tmp_path):
    from pipelines.readers.xmlstream import XmlRefused

    for name, text in (("bomb", BILLION_LAUGHS), ("xxe", EXTERNAL_ENTITY)):
        path = tmp_path / f"{name}.xml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(XmlRefused, match="entity"):
            _read(str(path))


def test_external_dtd_reference_is_read_not_fetched(tmp_path):
    head = '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE posts SYSTEM \'http://example.invalid/posts.dtd\'>\n'
    rows = [
        _row(Id=1, PostTypeId=1, Score=2, Title="T", Body="<p>q</p>"),
        _row(Id=2, PostTypeId=2, ParentId=1, Score=1, Body="<p>a</p>"),
    ]
    docs, _ = _read(_site(tmp_path, "dtd.example", rows, head=head))  # the test's network guard would raise
    assert docs[0]["text"] == "Q: T\nq\n\nA: a"


def test_hostile_inputs_are_recorded_and_the_run_goes_on(tmp_path):
    good = [
        _row(Id=1, PostTypeId=1, Score=2, Title="Kept", Body="<p>question</p>"),
        _row(Id=2, PostTypeId=2, ParentId=1, Score=1, Body="<p>answer</p>"),
    ]
    inputs = tmp_path / "in"
    _site(inputs, "good.example", good)
    (inputs / "bomb.example").mkdir()
    (inputs / "bomb.example" / "Posts.xml").write_text(BILLION_LAUGHS, encoding="utf-8")
    # truncated in the middle of a row: the question before the damage is still a document
    truncated = _site(
        inputs, "truncated.example", good + [_row(Id=3, PostTypeId=1, Score=1, Title="x", Body="y")]
    )
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[: data.index(b'<row Id="3"') + 20])
    # invalid UTF-8 bytes in a file declared UTF-8
    bad = _site(inputs, "badenc.example", good)
    data = (
        open(bad, "rb")
        .read()
        .replace(b"</posts>", b'<row Id="9" PostTypeId="1" Title="caf\xe9\xff" /></posts>')
    )
    open(bad, "wb").write(data)
    # a 100 MB single-line document: one row whose Body never ends within libxml2's 10 MB node limit
    huge = inputs / "huge.example"
    huge.mkdir()
    with open(huge / "Posts.xml", "wb") as f:
        f.write(b'<?xml version="1.0" encoding="utf-8"?><posts><row Id="1" PostTypeId="1" Score="1" Body="')
        chunk = b"lorem ipsum " * 87_382
        for _ in range(100):
            f.write(chunk)
        f.write(b'" /></posts>')
    result, grown_mb = run_source_peak_mb(
        "stackexchange", str(inputs), str(tmp_path / "out"), {"reader": {"max_sites": None}}
    )
    assert grown_mb < 400, f"peak RSS grew by {grown_mb:.0f} MB on a 100 MB line"
    stats = {}
    for name in os.listdir(tmp_path / "out" / "stackexchange" / "stats"):
        s = json.load(open(tmp_path / "out" / "stackexchange" / "stats" / name))
        stats[os.path.basename(os.path.dirname(s["input"]))] = s
    assert set(stats) == {
        "good.example",
        "bomb.example",
        "truncated.example",
        "badenc.example",
        "huge.example",
    }
    for s in stats.values():
        assert s["read"] == s["kept"] + s["rejected"]
    assert stats["good.example"]["kept"] == 1 and not stats["good.example"]["errors"]
    assert "read_error:XmlRefused" in stats["bomb.example"]["skipped"] and stats["bomb.example"]["read"] == 0
    assert (
        stats["truncated.example"]["kept"] == 1
        and "read_error:XMLSyntaxError" in stats["truncated.example"]["skipped"]
    )
    assert stats["badenc.example"]["kept"] == 1 and stats["badenc.example"]["errors"]
    assert stats["huge.example"]["read"] == 0 and "read_error:XmlRefused" in stats["huge.example"]["skipped"]
    assert result.summary["kept"] == 3


# -- the recipe ----------------------------------------------------------------------------------------------------
def test_recipe_on_fixtures_rejects_unanswered_questions(tmp_path):
    result = run_source("stackexchange", SE_FIXTURES, str(tmp_path))
    s = result.summary
    assert (s["read"], s["kept"], s["rejected"]) == (4, 3, 1)
    assert s["rejected_by_reason"] == {"se:no_answers": 1}
    rejected = pq.read_table(os.path.join(tmp_path, "stackexchange", "rejected")).to_pylist()
    assert rejected[0]["id"] == "cooking.stackexchange.com:9" and rejected[0]["rejected_by"] == "qa_filter"
    docs = pq.read_table(os.path.join(tmp_path, "stackexchange", "docs")).to_pylist()
    assert {d["lang"] for d in docs} == {"en"}


@pytest.mark.integration
def test_real_stackexchange_dumps_run_cleanly(tmp_path):
    corpus = corpus_path("stackexchange")
    result = run_source("stackexchange", corpus, str(tmp_path / "out"))
    s = result.summary
    assert result.inputs == 3 and not s["errors"]
    assert s["read"] == s["kept"] + s["rejected"] and s["kept"] > 800
    docs = pq.read_table(os.path.join(tmp_path, "out", "stackexchange", "docs")).to_pylist()
    sites = {json.loads(d["meta"])["site"] for d in docs}
    assert "GonzaloHirsch--TP-XML" in sites  # the copy with a <!DOCTYPE ... SYSTEM> line is read
    for d in docs:
        scores = json.loads(d["meta"])["answer_scores"]
        assert scores == sorted(scores, reverse=True)
        assert d["text"].startswith("Q: ") and "&lt;p&gt;" not in d["text"] and "<p>" not in d["text"]
    assert any(
        s >= 10 and any(t < 10 for t in json.loads(d["meta"])["answer_scores"])
        for d in docs
        for s in json.loads(d["meta"])["answer_scores"][:1]
    )


def test_out_of_range_and_odd_integers_cost_one_row_not_the_site(tmp_path):
    """A 23-digit Score overflowed SQLite and lost the whole site; any integer field that is not a plain 64-bit
    decimal (huge Id/ParentId/AcceptedAnswerId/ViewCount, "1_000", " 7", Arabic-Indic digits) is one malformed row,
    counted like Score="abc", and the rest of the site is read."""
    huge = "1" * 23
    rows = [
        _row(Id=1, PostTypeId=1, Score=5, Title="Good question", Body="<p>q1</p>", CreationDate="2020-01-01"),
        _row(Id=2, PostTypeId=2, ParentId=1, Score=huge, Body="<p>huge score</p>"),
        _row(Id=3, PostTypeId=2, ParentId=1, Score=3, Body="<p>fine answer</p>"),
        _row(Id=huge, PostTypeId=1, Score=1, Title="huge id", Body="<p>x</p>"),
        _row(Id=5, PostTypeId=2, ParentId=huge, Score=1, Body="<p>huge parent</p>"),
        _row(Id=6, PostTypeId=1, Score=-int(huge), Title="huge negative", Body="<p>x</p>"),
        _row(Id=7, PostTypeId=1, Score=1, Title="huge accepted", Body="<p>x</p>", AcceptedAnswerId=huge),
        _row(Id=8, PostTypeId=1, Score=1, Title="huge views", Body="<p>x</p>", ViewCount="9" * 20),
        _row(Id=9, PostTypeId=1, Score="1_000", Title="underscore", Body="<p>x</p>"),
        _row(Id=10, PostTypeId=1, Score=" 7", Title="space", Body="<p>x</p>"),
        _row(Id=11, PostTypeId=1, Score="\u0663", Title="arabic digit", Body="<p>x</p>"),
        _row(Id=12, PostTypeId=1, Score="abc", Title="letters", Body="<p>x</p>"),
        _row(Id=13, PostTypeId=1, Score=str((1 << 63) - 1), Title="max int64", Body="<p>q13</p>"),
        _row(Id=14, PostTypeId=2, ParentId=13, Score=str(-(1 << 63)), Body="<p>min int64</p>"),
    ]
    path = _site(tmp_path / "in", "x.stackexchange.com", rows)
    docs, skips = _read(path)
    assert sorted(d["id"] for d in docs) == ["x.stackexchange.com:1", "x.stackexchange.com:13"]
    assert [(s.reason, s.count) for s in skips] == [("skip:malformed_row", 1)] * 10
    q1 = next(d for d in docs if d["id"].endswith(":1"))
    assert q1["meta"]["answer_ids"] == [3] and "fine answer" in q1["text"]
    q13 = next(d for d in docs if d["id"].endswith(":13"))
    assert (q13["question_score"], q13["best_answer_score"]) == ((1 << 63) - 1, -(1 << 63))
    # through the whole recipe: written, counted, nothing lost
    result = run_source("stackexchange", path, str(tmp_path / "out"))
    s = result.summary
    assert s["read"] == 2 == s["kept"] + s["rejected"] and s["skipped"]["skip:malformed_row"] == 10
    assert not s["errors"]


def test_a_record_sqlite_refuses_is_one_refused_row():
    """The spill's own fallback: a batch SQLite refuses is inserted row by row, and only the bad row is lost."""
    import sqlite3

    from pipelines.readers.stackexchange import _COLUMNS, _insert

    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE posts ({_COLUMNS})")
    good = (1, 0, 1, 1, "t", "b", None, None, None, None)
    bad = (2, 0, 1 << 70, 2, "t", "b", None, None, None, None)
    assert _insert(db, [good, bad, good]) == 1
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (2,)
