"""Hostile inputs for every source, and a runner for them under a memory cap (used by tests/pipelines/test_ops_hostile.py).

``build_cases(root)`` writes ``root/<source>/<name>`` and returns, per source and input name, the words one of which
must show up in that input's record (a rejection reason, a skip reason or a read error).  Run as a script it runs
each source's default recipe over its folder with ``executor="local"`` after capping the address space
(RLIMIT_AS), and prints one JSON object: per source the per-input stats or the exception, and the peak RSS.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import resource
import sys
import zipfile
from typing import Any

# run as a script by test_ops_hostile: the repository root on the path, so `tests.helpers` imports
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

MB = 1 << 20
# an absolute path a tar-slip member aims at; the test checks it never appears
ESCAPE_ABS = "/tmp/winnow-ops-escaped.txt"


def _repeat_stream(compress, chunk: bytes, times: int) -> bytes:
    """A multi-member gzip/bz2 stream: ``chunk`` compressed once and concatenated (decompresses to chunk*times)."""
    return compress(chunk) * times


def _tar(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz built by the source tests' own helper (members may carry hostile names)."""
    import tempfile

    from tests.helpers.sources import make_tar

    with tempfile.TemporaryDirectory() as d:
        name = os.path.join(d, "t.tar.gz")
        make_tar(name, members, symlinks)
        with open(name, "rb") as f:
            return f.read()


def _zip_bomb(member: str, n: int, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"{i}-{member}", b"\0" * size)
    return buf.getvalue()


def _warc(records: list[tuple[str, bytes]], gz: bool = True, **options: Any) -> bytes:
    """:func:`tests.helpers.warc.warc_bytes` with this module's record ids (``<urn:hostile:...>``)."""
    from tests.helpers.warc import warc_bytes

    return warc_bytes(records, gz, **{"urn": "hostile", **options})


PAGE = (
    b"<html><head><title>Rivers</title></head><body><article><p>Rivers shape the land they cross over thousands of "
    b"years. Water picks up sand and stones in the hills and carries them down towards the sea.</p></article>"
    b"</body></html>"
)


def build_cases(root: str) -> dict[str, dict[str, list[str]]]:
    from tests.helpers.trees import fan_out, random_code
    from tests.pipelines.sources.test_stackexchange import BILLION_LAUGHS, EXTERNAL_ENTITY
    from tests.pipelines.sources.test_wikipedia import _dump, _page

    cases: dict[str, dict[str, tuple[bytes, list[str]]]] = {}
    big_line = b"a" * (100 * MB)  # one 100 MB line, no newline

    # -- CommonCrawl ----------------------------------------------------------------------------------------------
    good = _warc([("ok", PAGE)])
    cases["commoncrawl"] = {
        "malformed-headers.warc": (
            b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: banana\r\n\r\n" + PAGE + b"\r\n\r\n",
            ["skip:no_http_headers", "read_error"],
        ),
        "truncated.warc.gz": (good[: len(good) - 50], ["read:truncated_record"]),
        "nul-and-bad-utf8.warc.gz": (
            _warc([("nul", PAGE.replace(b"Rivers shape", b"Riv\x00ers \xff\xfe shape") + b"\x00" * 5000)]),
            ["read:binary_payload"],
        ),
        "huge-single-line.warc.gz": (
            _warc([("huge", b"<html><body><p>" + big_line + b"</p></body></html>")]),
            ["read:payload_too_large"],
        ),
        "gzip-bomb.warc.gz": (
            _repeat_stream(gzip.compress, b"\0" * (16 * MB), 64),  # 1 GiB of NUL bytes, not a WARC
            ["read_error"],  # warcio refuses the first "line" (or MemoryError under the cap)
        ),
        "entity-bomb-html.warc.gz": (
            _warc([("lol", BILLION_LAUGHS.replace("posts", "html").encode())]),
            # HTML parsers do not expand DTD entities: "&lol9;" stays text (which the domain router may take for
            # code: all brackets and semicolons, then too short as code)
            ["lang:", "extract:", "gopher", "code:"],
        ),
        # a Content-Length 2,000 bytes too long swallows the next records; the file name is not valid UTF-8
        os.fsdecode(b"overrun-\xff.warc"): (_overrun_warc(), ["read:content_length_mismatch"]),
        "duplicate-ids.warc.gz": (_warc([("same", PAGE), ("same", PAGE)]), ["skip:duplicate_record_id"]),
    }
    # -- GitHub ---------------------------------------------------------------------------------------------------
    py = b'"""A module."""\n\n\ndef add(a, b):\n    return a + b\n'
    cases["github"] = {
        "tar-slip.tar.gz": (
            _tar(
                {
                    "repo/LICENSE": b"MIT License\n",
                    "repo/a.py": py,
                    "../../../escaped.py": py,
                    ESCAPE_ABS: py,
                },
                symlinks={"repo/passwd.py": "/etc/passwd"},
            ),
            ["archive:unsafe_path"],
        ),
        "zip-bomb.zip": (_zip_bomb("bomb.py", 40, 10 * MB), ["read:file_too_large"]),  # 10 MB > 1 MB per file
        "truncated.tar.gz": (_tar({"repo/a.py": py * 4000})[:600], ["read_error:EOFError"]),
        # one corrupt and one encrypted member between good ones: only those two are lost, each with a reason
        "damaged-members.zip": (_damaged_zip(), ["read_error:encrypted"]),
        # cut after its first members: those are read, the cut is recorded
        "cut-late.tar.gz": (
            _cut(_tar({f"repo/m{i}.py": random_code(i) for i in range(6)}), 0.6),
            ["truncated"],
        ),
    }
    # -- books ----------------------------------------------------------------------------------------------------
    cases["books"] = {
        "zip-bomb.zip": (_zip_bomb("book.txt", 60, 10 * MB), ["read_error:ArchiveLimitError"]),  # > 500 MB
        "invalid-encoding.txt": (bytes(range(256)) * 400, ["gutenberg:no_start_marker"]),
        "nul-bytes.txt": (b"\0" * 200_000, ["gutenberg:no_start_marker"]),
        "huge-single-line.txt": (big_line, ["read:book_too_large"]),
        "zip-slip.zip": (
            _zip_members({"../../escaped.txt": b"x", ESCAPE_ABS: b"y"}),
            ["archive:unsafe_path"],
        ),
        os.fsdecode(b"caf\xe9-slip.zip"): (_zip_members({"../x.txt": b"x"}), ["archive:unsafe_path"]),
    }
    # -- arXiv ----------------------------------------------------------------------------------------------------
    paper = b"\\documentclass{article}\n\\begin{document}\n\\section{Intro}\nText.\n\\end{document}\n"
    cases["arxiv"] = {
        "2101.00001.tex": (
            b"\\documentclass{article}\\def\\a{\\a\\a}\\newcommand{\\b}{\\b x}\\begin{document}\\section{Loop}"
            b"\\a\\b\\end{document}\n",
            ["latex:macro_expansion_limit"],
        ),
        "2101.00002.tar.gz": (
            _tar(
                {"main.tex": paper, "../../escaped.tex": b"x", ESCAPE_ABS: b"y"},
                symlinks={"l.tex": "/etc/passwd"},
            ),
            ["archive:unsafe_path"],
        ),
        "2101.00003.gz": (
            _repeat_stream(gzip.compress, b"%" * (16 * MB), 32),
            ["read:file_too_large"],
        ),  # 512 MB
        "2101.00004.tar.gz": (_tar(fan_out()), ["arxiv:inline_limit"]),  # \input x4 per file, 12 levels
    }
    # -- StackExchange --------------------------------------------------------------------------------------------
    cases["stackexchange"] = {
        "bomb.stackexchange.com/Posts.xml": (BILLION_LAUGHS.encode(), ["XmlRefused"]),
        "xxe.stackexchange.com/Posts.xml": (EXTERNAL_ENTITY.encode(), ["XmlRefused"]),
        "longline.stackexchange.com/Posts.xml": (
            b'<?xml version="1.0"?>\n<posts>\n  <row Id="1" PostTypeId="1" Body="'
            + big_line
            + b'" />\n</posts>\n',
            ["XmlRefused"],
        ),
        "truncated.stackexchange.com/Posts.xml": (
            b'<?xml version="1.0"?>\n<posts>\n  <row Id="1" PostTypeId="1" Score="1" Title="t" Body="&lt;p&gt;hi',
            ["read_error"],
        ),
        "hugescore.stackexchange.com/Posts.xml": (  # 23 digits overflow SQLite's INTEGER: one row, not the site
            b'<?xml version="1.0"?>\n<posts>\n  <row Id="1" PostTypeId="1" Score="12345678901234567890123" '
            b'Title="t" Body="b" />\n  <row Id="2" PostTypeId="1" Score="1" Title="t" Body="b" />\n</posts>\n',
            ["skip:malformed_row"],
        ),
    }
    # -- Wikipedia ------------------------------------------------------------------------------------------------
    dtd = '<!DOCTYPE mediawiki [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    article = _dump("en", _page(1, "River", "A '''river''' is a natural stream of water. " * 40))
    cases["wikipedia"] = {
        "entity-dtd.xml": ((dtd + _dump("en", _page(1, "A", "&b;"))).encode(), ["XmlRefused"]),
        "bz2-bomb.xml.bz2": (  # a valid header, then 1 GiB on one line (multi-stream bz2, as real dumps are)
            bz2.compress(article.split("<page>")[0].encode() + b"<page><title>")
            + _repeat_stream(bz2.compress, b"a" * (16 * MB), 64),
            ["read_error:XmlRefused", "read_error:XMLSyntaxError"],  # lxml stops text nodes at 10 MB
        ),
        "truncated.xml.bz2": (bz2.compress(article.encode())[:200], ["read_error:EOFError"]),
        "repeated-page.xml": (
            _dump("en", _page(1, "River", "A river flows to the sea. " * 40) * 2).encode(),
            ["skip:duplicate_page_id"],
        ),
        "nul-bytes.xml": (
            article.encode().replace(b"natural", b"nat\x00ural"),
            ["read_error:XMLSyntaxError"],
        ),
        "macro-loop.xml": (
            _dump("en", _page(2, "Loop", "{{loop}} " * 20000 + "{{" * 5000 + "text" + "}}" * 5000)).encode(),
            [
                "wiki:parse_error_RecursionError"
            ],  # 5,000 nested templates: that page is rejected, the dump goes on
        ),
    }
    out: dict[str, dict[str, list[str]]] = {}
    for source, items in cases.items():
        for name, (data, expect) in items.items():
            path = os.path.join(root, source, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            out.setdefault(source, {})[os.fsencode(name).decode("utf-8", "backslashreplace")] = expect
    return out


def _overrun_warc() -> bytes:
    """An uncompressed WARC of five pages whose second record declares 2,000 bytes more than it holds."""
    import re

    records = [_warc([(f"r{i}", PAGE)], gz=False, urn="overrun") for i in range(5)]
    m = re.search(rb"Content-Length: (\d+)", records[1])
    assert m is not None
    records[1] = records[1][: m.start(1)] + str(int(m.group(1)) + 2000).encode() + records[1][m.end(1) :]
    return b"".join(records)


def _damaged_zip() -> bytes:
    import tempfile

    from tests.helpers.trees import zip_with_damage

    with tempfile.TemporaryDirectory() as d:
        zip_with_damage(os.path.join(d, "z.zip"))
        with open(os.path.join(d, "z.zip"), "rb") as f:
            return f.read()


def _cut(blob: bytes, fraction: float) -> bytes:
    return blob[: int(len(blob) * fraction)]


def _zip_members(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _reset_peak_rss() -> None:
    """Linux keeps ru_maxrss across execve, so a child of a big pytest process would report the parent's peak:
    reset this process's high-water mark (clear_refs 5) and read VmHWM instead."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_all(root: str, out: str, headroom_mb: int) -> dict:
    """Every source over its hostile folder, under RLIMIT_AS = current address space + ``headroom_mb``."""
    from pipelines.runner import run_recipe
    from pipelines.sources.commoncrawl import without_models
    from pipelines.sources.registry import build_recipe, deep_merge, load_config

    overrides = {"commoncrawl": without_models()}
    recipes = {
        s: build_recipe(s, deep_merge(load_config(s), overrides.get(s, {}))) for s in sorted(os.listdir(root))
    }
    for recipe in recipes.values():  # models load lazily: load them before the cap so it measures the inputs
        for step in recipe.steps:
            step.setup()
            step._ready = True
    _reset_peak_rss()
    cap = _vm_bytes() + headroom_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    results: dict = {"cap_mb": cap // MB}
    for source, recipe in recipes.items():
        try:
            res = run_recipe(recipe, os.path.join(root, source), out, executor="local", progress=False)
            stats = {}
            for name in os.listdir(os.path.join(out, source, "stats")):
                with open(os.path.join(out, source, "stats", name), encoding="utf-8") as f:
                    s = json.load(f)
                stats[os.path.relpath(s["input"], os.path.join(root, source))] = s
            results[source] = {"inputs": res.inputs, "stats": stats}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            results[source] = {"error": f"{type(exc).__name__}: {exc}"}
    results["peak_rss_mb"] = _peak_rss_mb()
    return results


if __name__ == "__main__":
    print(json.dumps(run_all(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
