"""GitHub repositories with hostile trees, end to end: every file is a document, a rejected row or a counted skip,
the other repositories and the corpus stages are unaffected, nothing is lost or written twice."""

from __future__ import annotations

import json
import os
import zipfile

from pipelines.readers.github import GithubReader
from tests.helpers.sources import all_stats, assert_accounting, read_kind, run_source
from tests.helpers.trees import deep_chain, random_code, write_tar, zip_with_damage

MIT = (
    b"MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n"
    b"The above copyright notice and this permission notice shall be included in all copies.\n"
)
PY = (
    b'"""Sum helpers."""\n\n\ndef add(left, right):\n    """Sum of two numbers."""\n    return left + right\n'
)


def _write(root: bytes, rel: bytes, data: bytes) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _ids_and_reasons(out: str) -> tuple[set[str], dict[str, str]]:
    kept = set(read_kind(out, "github", "docs").column("id").to_pylist())
    rej = read_kind(out, "github", "rejected").to_pylist()
    return kept, {r["id"]: r["reason"] for r in rej}


def test_non_utf8_file_names_in_folders_and_tars(tmp_path):
    repos = tmp_path / "repos"
    repos.mkdir()
    folder = os.fsencode(repos / "acme--latin")
    _write(folder, b"LICENSE", MIT)
    _write(folder, b"src/ok.py", PY)
    _write(folder, b"src/caf\xe9.py", PY.replace(b"Sum", b"Caf\xc3\xa9 sum"))
    _write(folder, b"d\xff\xfe/util.py", PY.replace(b"add", b"plus"))
    write_tar(
        str(repos / "acme--tarred.tar.gz"),
        {
            "tarred-main/LICENSE": MIT,
            "tarred-main/ok.py": PY.replace(b"add", b"times"),
            os.fsdecode(b"tarred-main/na\xefve.py"): PY.replace(b"add", b"div"),
        },
    )
    out = str(tmp_path / "out")
    res = run_source("github", str(repos), out)
    assert res.summary["inputs"] == 2 and not res.summary.get("errors")
    assert_accounting(out, "github")
    kept, reasons = _ids_and_reasons(out)
    assert {
        "acme--latin/src/ok.py",
        "acme--latin/src/caf\\xe9.py",
        "acme--latin/d\\xff\\xfe/util.py",
        "acme--tarred/ok.py",
        "acme--tarred/na\\xefve.py",
    } <= kept
    assert read_kind(out, "github", "rejected").num_rows == 0
    docs = {r["id"]: r for r in read_kind(out, "github", "docs").to_pylist()}
    assert json.loads(docs["acme--latin/src/caf\\xe9.py"]["meta"])["path_escaped"] is True
    assert "path_escaped" not in json.loads(docs["acme--latin/src/ok.py"]["meta"])
    # the corpus stage ran and the summary was written: the run finished
    assert "exact_md5" in res.summary["corpus_stages"]
    assert os.path.exists(os.path.join(out, "github", "summary.json"))


def test_non_utf8_repository_name(tmp_path):
    """The repository folder's own name goes into every id: printable too (the input key is the runner's)."""
    repo = os.path.join(os.fsencode(tmp_path), b"acme--r\xe9po")
    _write(repo, b"LICENSE", MIT)
    _write(repo, b"main.py", PY)
    rows = [r for r in GithubReader().read(os.fsdecode(repo)) if isinstance(r, dict)]
    assert [r["id"] for r in rows] == ["acme--r\\xe9po/main.py"]
    assert rows[0]["meta"]["repo"] == "acme--r\\xe9po"


def test_damaged_archives_keep_what_is_readable(tmp_path):
    repos = tmp_path / "repos"
    repos.mkdir()
    # a zip with a corrupt and an encrypted member between good ones
    zpath = str(repos / "acme--zipped.zip")
    zip_with_damage(zpath)
    with zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr("LICENSE", MIT)
    # a tarball cut after its first members
    tpath = str(repos / "acme--cut.tar.gz")
    write_tar(tpath, {"cut-main/LICENSE": MIT} | {f"cut-main/m{i}.py": random_code(10 + i) for i in range(6)})
    blob = open(tpath, "rb").read()
    with open(tpath, "wb") as f:
        f.write(blob[: int(len(blob) * 0.6)])
    # a repository whose folders go 1,000 deep
    deep_repo = repos / "acme--deep"
    deep_repo.mkdir()
    (deep_repo / "LICENSE").write_bytes(MIT)
    (deep_repo / "top.py").write_bytes(PY)
    # a healthy repository beside them
    good = repos / "acme--good"
    good.mkdir()
    (good / "LICENSE").write_bytes(MIT)
    (good / "ok.py").write_bytes(PY.replace(b"add", b"good"))

    out = str(tmp_path / "out")
    with deep_chain(str(deep_repo), 1000) as deep:
        with open(os.path.join(deep, "bottom.py"), "wb") as f:
            f.write(PY.replace(b"add", b"deep"))
        res = run_source("github", str(repos), out)
    assert res.summary["inputs"] == 4 and not res.summary.get("errors")
    assert_accounting(out, "github")
    kept, reasons = _ids_and_reasons(out)
    stats = {os.path.basename(s["input"]): s for s in all_stats(out, "github")}

    # zip: the good members are documents, the damaged ones rejected rows with their id; all four counted once
    assert stats["acme--zipped.zip"]["read"] == 4 and stats["acme--zipped.zip"]["rejected"] == 2
    assert {"acme--zipped/a_good.py", "acme--zipped/d_later.py"} <= kept
    assert reasons["acme--zipped/c_secret.py"] == "read_error:encrypted"
    assert reasons["acme--zipped/b_bad.py"] in ("read_error:zlib.error", "read_error:BadZipFile")
    # cut tarball: the members before the cut are read, the cut is one counted skip, no input-level error
    cut = stats["acme--cut.tar.gz"]
    assert cut["skipped"]["read_error:truncated_archive"] == 1 and not cut["errors"]
    assert {"acme--cut/m0.py", "acme--cut/m1.py", "acme--cut/m2.py"} <= kept | set(reasons)
    assert cut["kept"] >= 2
    # deep folders: the top is read, the chain is cut once with a reason
    deep_stats = stats["acme--deep"]
    assert "acme--deep/top.py" in kept and deep_stats["skipped"]["archive:too_deep"] == 1
    assert "acme--good/ok.py" in kept
    assert "exact_md5" in res.summary["corpus_stages"]


def test_nul_bytes_anywhere_make_a_file_binary(tmp_path):
    repo = tmp_path / "acme--nul"
    repo.mkdir()
    (repo / "LICENSE").write_bytes(MIT)
    (repo / "clean.py").write_bytes(random_code(7))
    (repo / "late_nul.py").write_bytes(random_code(8) + b"\x00\x00tail = 1\n")  # NUL after the first 8 KiB
    (repo / "early_nul.py").write_bytes(b"\x00" + random_code(9))
    assert len(random_code(8)) > 8192
    rows = list(GithubReader().read(str(repo)))
    docs = [r["id"] for r in rows if isinstance(r, dict)]
    skips = [r.reason for r in rows if not isinstance(r, dict)]
    assert docs == ["acme--nul/clean.py"]
    assert skips.count("skip:binary") == 2
