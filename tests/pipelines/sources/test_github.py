"""GitHub code recipe: license detection, file rules, header stripping, exact dedup, hostile archives."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from filters.code import code_stats, strip_license_header
from filters.licenses import detect_license, license_from_text
from pipelines.readers.archive import ArchiveLimitError, Limits, Refused, iter_tree
from tests.helpers.paths import FIXTURES, corpus_path
from tests.helpers.sources import all_stats, assert_accounting, make_tar, read_kind, run_source

PY = b'"""A module."""\n\n\ndef add(left, right):\n    """Sum of two numbers."""\n    return left + right\n'
MIT = (
    b"MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n"
    b"The above copyright notice and this permission notice shall be included in all copies.\n"
)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("karpathy--micrograd", "mit"),
        ("google--python-fire", "apache-2.0"),
        ("antirez--kilo", "bsd-2-clause"),
        ("jarun--googler", "gpl-3.0"),
        ("jrfoster--spark-intro", "none"),
    ],
)
def test_license_of_real_repositories(repo, expected):
    root = corpus_path("github", repo)
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            files[os.path.relpath(p, root)] = open(p, encoding="utf-8", errors="replace").read()
    assert detect_license(files).license == expected


def test_license_texts_are_told_apart():
    gpl3 = (
        "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n"
        + "x " * 900
        + "GNU Affero General Public License"
    )
    assert license_from_text(gpl3) == "gpl-3.0"  # the GPL text names the AGPL in section 13
    assert license_from_text("GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1, February 1999") == "lgpl-2.1"
    assert license_from_text("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3") == "agpl-3.0"
    bsd = "Redistribution and use in source and binary forms, with or without modification, are permitted"
    assert license_from_text(bsd) == "bsd-2-clause"
    assert license_from_text(bsd + "\n3. Neither the name of the copyright holder") == "bsd-3-clause"
    assert license_from_text("Some words about a project.") is None
    assert detect_license({"LICENSE": "SPDX-License-Identifier: Apache-2.0\n"}).license == "apache-2.0"
    assert detect_license({"LICENSE": "All rights reserved. Ask us."}).license == "unknown"
    assert (
        detect_license({"README.md": "# x\n\nUses the GPL-3 tool y.\n\n## License\n\nMIT\n"}).license == "mit"
    )


def test_strip_license_header_by_language():
    py = "#!/usr/bin/env python\n# Copyright 2020 X\n# Licensed under MIT\n\nimport os\n"
    assert strip_license_header(py, "python") == "#!/usr/bin/env python\nimport os\n"
    c = "/*\n * Copyright (c) 2016 X\n * All rights reserved.\n */\n#include <stdio.h>\nint x;\n"
    assert strip_license_header(c, "c") == "#include <stdio.h>\nint x;\n"
    plain = "# Parse the command line.\nimport sys\n"
    assert strip_license_header(plain, "python") == plain  # not a license: kept
    inline = "/* Copyright X */ int a;\n"
    assert strip_license_header(inline, "c") == inline  # code on the comment's line


def test_code_stats_rules():
    max_len, mean, alnum, alpha_tok = code_stats("abc def\n" + "x" * 1500, 4)
    assert max_len == 1500 and mean == pytest.approx(753.5)
    assert code_stats("{}[]();;==++--\n" * 10, 40)[2] < 0.25


def test_fixture_repositories(tmp_path):
    res = run_source("github", os.path.join(FIXTURES, "github"), str(tmp_path))
    assert_accounting(str(tmp_path), "github")
    docs = read_kind(str(tmp_path), "github", "docs")
    rej = read_kind(str(tmp_path), "github", "rejected")
    kept = set(docs.column("id").to_pylist())
    reasons = dict(zip(rej.column("id").to_pylist(), rej.column("reason").to_pylist(), strict=True))
    assert "acme--tinyjson/tinyjson/printer.py" in kept and "acme--bsdnet/netx/dial.go" in kept
    assert reasons["acme--gplcalc/src/calc.c"] == "license:gpl-3.0"
    assert reasons["acme--notes/journal.sh"] == "license:none"
    assert reasons["acme--tinyjson/tinyjson/_table.py"] == "code:max_line_length"
    assert reasons["acme--tinyjson/tinyjson/points.h"] == "code:avg_line_length"
    # the same leftpad.js in two repositories: the smallest id survives
    assert (
        "acme--bsdnet/leftpad.js" in kept and reasons["acme--tinyjson/static/leftpad.js"] == "dedup:exact_md5"
    )
    assert not any("node_modules" in i or i.endswith(".min.js") for i in kept | set(reasons))
    skipped = res.summary["skipped"]
    assert skipped["skip:vendored"] == 1 and skipped["skip:minified"] == 1 and skipped["skip:extension"] >= 4
    printer = next(r for r in docs.to_pylist() if r["id"] == "acme--tinyjson/tinyjson/printer.py")
    assert printer["text"].startswith('#!/usr/bin/env python3\n"""The printer')  # header stripped
    assert printer["license"] == "mit" and printer["language"] == "python"
    assert '"repo": "acme--tinyjson"' in printer["meta"]
    # the cluster is visible in the `duplicates` view (the partitioned exact dedup of dedup/, not a private file)
    from pipelines.query import connect

    clusters = (
        connect(str(tmp_path))
        .execute("SELECT id, kept, cluster_size, reason FROM duplicates ORDER BY id")
        .fetchall()
    )
    assert clusters == [
        ("acme--bsdnet/leftpad.js", True, 2, None),
        ("acme--tinyjson/static/leftpad.js", False, 2, "dedup:exact_md5"),
    ]
    assert res.summary["corpus_stages"]["exact_md5"]["moved_to_rejected"] == 1
    # a rerun changes nothing (dedup is idempotent, inputs are done)
    before = read_kind(str(tmp_path), "github", "docs").sort_by("id")
    again = run_source("github", os.path.join(FIXTURES, "github"), str(tmp_path))
    assert again.summary["corpus_stages"]["exact_md5"]["up_to_date"] is True
    assert read_kind(str(tmp_path), "github", "docs").sort_by("id").equals(before)
    assert_accounting(str(tmp_path), "github")


def test_archives_and_hostile_members(tmp_path):
    repos = tmp_path / "repos"
    repos.mkdir()
    make_tar(
        str(repos / "good.tar.gz"),
        {
            "good-main/LICENSE": MIT,
            "good-main/pkg/add.py": PY,
            "good-main/pkg/bin.py": b"\x00\x01\x02" * 50,
            "good-main/pkg/latin.py": "s = 'caf\u00e9'\n".encode("latin-1"),
            "../evil.py": PY,
            "/etc/evil.py": PY,
        },
        symlinks={"good-main/pkg/passwd.py": "../../../../etc/passwd"},
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("LICENSE", MIT)
        for i in range(6):  # 6 x 900 kB of one byte: tiny compressed, over the 4 MB cap inflated
            zf.writestr(f"bomb{i}.py", b"a" * 900_000)
    (repos / "bomb.zip").write_bytes(buf.getvalue())
    blob = (repos / "good.tar.gz").read_bytes()
    (repos / "truncated.tar.gz").write_bytes(blob[: len(blob) // 2])
    out = str(tmp_path / "out")
    res = run_source("github", str(repos), out, {"reader": {"max_total_bytes": 4_000_000}})
    assert_accounting(out, "github")
    by_input = {os.path.basename(s["input"]): s for s in all_stats(out, "github")}
    good = by_input["good.tar.gz"]
    assert good["kept"] == 1 and good["rejected_by_reason"] == {"read:not_utf8": 1}
    assert good["skipped"]["archive:unsafe_path"] == 2 and good["skipped"]["archive:link_out_of_tree"] == 1
    assert good["skipped"]["skip:binary"] == 1
    assert read_kind(out, "github", "docs").column("id").to_pylist() == ["good/pkg/add.py"]
    assert any("ArchiveLimitError" in e for e in by_input["bomb.zip"]["errors"])
    cut = by_input["truncated.tar.gz"]  # what was readable before the cut is kept, the cut is recorded
    assert cut["skipped"]["read_error:truncated_archive"] == 1 and not cut["errors"]
    assert res.summary["inputs"] == 3


def test_iter_tree_caps_member_count(tmp_path):
    make_tar(str(tmp_path / "many.tar.gz"), {f"f{i}.py": b"x = 1\n" for i in range(30)})
    with pytest.raises(ArchiveLimitError):
        list(iter_tree(str(tmp_path / "many.tar.gz"), Limits(max_members=10)))
    (tmp_path / "d").mkdir()
    os.symlink("/etc/passwd", tmp_path / "d" / "link.py")
    assert list(iter_tree(str(tmp_path / "d"))) == [Refused("link.py", "archive:link_out_of_tree")]


@pytest.mark.integration
def test_real_github_corpus(tmp_path):
    res = run_source("github", corpus_path("github"), str(tmp_path))
    assert_accounting(str(tmp_path), "github")
    assert res.summary["inputs"] == 5 and not res.summary.get("errors")
    docs = read_kind(str(tmp_path), "github", "docs")
    assert set(docs.column("license").to_pylist()) == {"mit", "apache-2.0", "bsd-2-clause"}
    rej = read_kind(str(tmp_path), "github", "rejected")
    assert {r for r in rej.column("reason").to_pylist() if r.startswith("license:")} == {
        "license:gpl-3.0",
        "license:none",
    }
    assert "karpathy--micrograd/micrograd/engine.py" in set(docs.column("id").to_pylist())
