"""Damage stays local in ``pipelines.readers.archive``: non-UTF-8 names, corrupt or encrypted zip members, a cut
``.tar.gz`` and absurdly deep folders each cost one recorded member, never the rest of the tree."""

from __future__ import annotations

import io
import os
import random
import tarfile
import zipfile

import pytest

from pipelines.readers.archive import TRUNCATED, Limits, Member, Refused, iter_tree, printable_path

PY = b"def add(left, right):\n    return left + right\n"


def _code(seed: int, lines: int = 400) -> bytes:
    """Source text that gzip cannot squeeze much (so a cut lands where the byte count says)."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    out = [
        f"{rng.choice(words)}_{rng.randrange(10**6)} = {rng.random():.12f} * {rng.choice(words)}_{i}"
        for i in range(lines)
    ]
    return ("\n".join(out) + "\n").encode()


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


def _zip_with_damage(path: str) -> None:
    """good.py, bad.py (deflate stream corrupted), secret.py (flagged encrypted), later.py after them."""
    bodies = {"a_good.py": _code(1), "b_bad.py": _code(2), "c_secret.py": _code(3), "d_later.py": _code(4)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in bodies.items():
            zf.writestr(name, data)
    blob = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(blob))) as zf:
        bad, secret = zf.getinfo("b_bad.py"), zf.getinfo("c_secret.py")
    # corrupt the middle of bad.py's compressed bytes (30-byte local header + name, no extra field)
    start = bad.header_offset + 30 + len(bad.filename)
    for i in range(start + 40, start + 60):
        blob[i] ^= 0xFF
    # set the "encrypted" flag bit of secret.py in its local header and its central-directory entry
    blob[secret.header_offset + 6] |= 0x01
    pos = blob.find(b"PK\x01\x02")
    while pos != -1:  # central-directory entries: flags at +8, name length at +28, name at +46
        n = int.from_bytes(blob[pos + 28 : pos + 30], "little")
        if blob[pos + 46 : pos + 46 + n] == secret.filename.encode():
            blob[pos + 8] |= 0x01
        pos = blob.find(b"PK\x01\x02", pos + 4)
    with open(path, "wb") as f:
        f.write(bytes(blob))


def test_corrupt_and_encrypted_zip_members_cost_only_themselves(tmp_path):
    path = str(tmp_path / "r.zip")
    _zip_with_damage(path)
    got = _members(iter_tree(path))
    assert got["a_good.py"] == "ok" and got["d_later.py"] == "ok"
    assert got["c_secret.py"] == "read_error:encrypted"
    assert got["b_bad.py"] in ("read_error:zlib.error", "read_error:BadZipFile")  # zlib.error or a CRC mismatch
    assert len(got) == 4


def test_cut_tar_gz_keeps_the_members_before_the_cut(tmp_path):
    path = str(tmp_path / "r.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for i in range(6):
            data = _code(i)
            info = tarfile.TarInfo(f"r/m{i}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(blob[: int(len(blob) * 0.6)])
    items = list(iter_tree(path))
    whole = [m.path for m in items if isinstance(m, Member) and m.data is not None]
    assert whole[:3] == ["r/m0.py", "r/m1.py", "r/m2.py"]  # the first 60% is read
    assert all(m.data == _code(int(m.path[3])) for m in items if isinstance(m, Member))  # and read right
    assert items[-1] == Refused("", TRUNCATED)  # the cut itself is recorded once, last
    assert len(whole) < 6


def test_deep_folders_are_cut_at_max_depth(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "top.py").write_bytes(PY)
    deep = str(root)
    for _ in range(1000):  # 2,000 characters: the OS allows it; Python's recursive walks (even makedirs) do not
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
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
