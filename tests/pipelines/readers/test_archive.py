"""Damage stays local in ``pipelines.readers.archive``: non-UTF-8 names, corrupt or encrypted zip members, a cut
``.tar.gz`` and absurdly deep folders each cost one recorded member, never the rest of the tree."""

from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile

import pytest

from pipelines.readers.archive import TRUNCATED, Limits, Member, Refused, iter_tree, printable_path
from tests.helpers.trees import deep_chain, random_code, zip_with_damage

PY = b"def add(left, right):\n    return left + right\n"


def _members(items) -> dict[str, str]:
    return {i.path: (i.reason if isinstance(i, Refused) else "ok") for i in items}


def test_printable_path_is_stable_and_utf8_safe():
    raw = os.fsdecode(b"src/caf\xe9/\xff.py")  # what os.walk and tarfile hand out: lone surrogates
    shown, escaped = printable_path(raw)
    assert escaped and shown == "src/caf\\xe9/\\xff.py"
    shown.encode("utf-8")  # a Parquet/JSON writer accepts it
    assert printable_path("src/café.py") == ("src/café.py", False)


def test_folder_with_non_utf8_names(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "ok.py").write_bytes(PY)
    os.makedirs(os.path.join(os.fsencode(root), b"d\xff"))
    with open(os.path.join(os.fsencode(root), b"d\xff", b"caf\xe9.py"), "wb") as f:
        f.write(PY)
    items = list(iter_tree(str(root)))
    assert [(m.path, m.escaped) for m in items if isinstance(m, Member)] == [
        ("d\\xff/caf\\xe9.py", True),
        ("pkg/ok.py", False),
    ]
    assert all(m.data == PY for m in items)


def test_tar_with_non_utf8_names(tmp_path):
    path = str(tmp_path / "r.tar.gz")
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="utf-8") as tar:
        for name in ("r/ok.py", os.fsdecode(b"r/caf\xe9.py")):
            info = tarfile.TarInfo(name)
            info.size = len(PY)
            tar.addfile(info, io.BytesIO(PY))
    got = {m.path: m.escaped for m in iter_tree(path)}
    assert got == {"r/caf\\xe9.py": True, "r/ok.py": False}


def test_corrupt_and_encrypted_zip_members_cost_only_themselves(tmp_path):
    path = str(tmp_path / "r.zip")
    zip_with_damage(path)
    got = _members(iter_tree(path))
    assert got["a_good.py"] == "ok" and got["d_later.py"] == "ok"
    assert got["c_secret.py"] == "read_error:encrypted"
    assert got["b_bad.py"] in (
        "read_error:zlib.error",
        "read_error:BadZipFile",
    )  # zlib.error or a CRC mismatch
    assert len(got) == 4


def test_cut_tar_gz_keeps_the_members_before_the_cut(tmp_path):
    path = str(tmp_path / "r.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for i in range(6):
            data = random_code(i)
            info = tarfile.TarInfo(f"r/m{i}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(blob[: int(len(blob) * 0.6)])
    items = list(iter_tree(path))
    whole = [m.path for m in items if isinstance(m, Member) and m.data is not None]
    assert whole[:3] == ["r/m0.py", "r/m1.py", "r/m2.py"]  # the first 60% is read
    assert all(
        m.data == random_code(int(m.path[3])) for m in items if isinstance(m, Member)
    )  # and read right
    assert items[-1] == Refused("", TRUNCATED)  # the cut itself is recorded once, last
    assert len(whole) < 6


def test_deep_folders_are_cut_at_max_depth(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "top.py").write_bytes(PY)
    with deep_chain(
        str(root), 1000
    ) as deep:  # 2,000 characters: the OS allows it, Python's recursion does not
        with open(os.path.join(deep, "bottom.py"), "wb") as f:
            f.write(PY)
        with open(os.path.join(str(root), *(["d"] * 3), "mid.py"), "wb") as f:
            f.write(PY)
        got = _members(iter_tree(str(root), Limits(max_depth=10)))
    assert got["top.py"] == "ok" and got["d/d/d/mid.py"] == "ok"
    assert got["/".join(["d"] * 11)] == "archive:too_deep"  # one record for the folder not entered
    assert not any(p.endswith("bottom.py") for p in got)
    assert len(got) == 3


def test_deep_tar_member_is_refused(tmp_path):
    path = str(tmp_path / "r.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name in ("r/top.py", "r/" + "d/" * 1000 + "bottom.py"):
            info = tarfile.TarInfo(name)
            info.size = len(PY)
            tar.addfile(info, io.BytesIO(PY))
    got = _members(iter_tree(path))
    assert got["r/top.py"] == "ok"
    assert got["r/" + "d/" * 1000 + "bottom.py"] == "archive:too_deep"


@pytest.mark.parametrize("exc", [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")])
def test_environment_errors_are_not_swallowed(tmp_path, monkeypatch, exc):
    """An unreadable folder must fail the input (so a rerun retries it), not vanish from the listing."""
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.py").write_bytes(PY)
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("sub"):
            raise exc
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(OSError):
        list(iter_tree(str(root)))


def test_each_path_comes_out_once(tmp_path):
    """Ids are built from paths: a name held twice (zip, tar) or printed like another one is refused, not doubled."""
    zpath = str(tmp_path / "r.zip")
    with zipfile.ZipFile(zpath, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        zf.writestr("a.py", PY)
        zf.writestr("a.py", PY + b"# second copy\n")
    got = [(i.path, i.reason if isinstance(i, Refused) else i.data) for i in iter_tree(zpath)]
    assert got == [("a.py", PY), ("a.py", "archive:duplicate_name")]
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "caf\\xe9.py").write_bytes(PY)  # a real name with a backslash...
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.py"), "wb") as f:  # ...and the byte 0xE9
        f.write(PY)
    items = list(iter_tree(str(folder)))
    assert [type(i).__name__ for i in items] == ["Member", "Refused"]
    assert items[1] == Refused("caf\\xe9.py", "archive:duplicate_name")
