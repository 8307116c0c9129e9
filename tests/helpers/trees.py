"""Generated hostile trees for the GitHub/arXiv reader tests: incompressible code, a zip with a corrupt and an
encrypted member, a tarball writer that accepts non-UTF-8 names, folder chains 1,000 deep, an ``\\input`` fan-out."""

from __future__ import annotations

import contextlib
import io
import os
import random
import tarfile
import zipfile
from collections.abc import Iterator


def random_code(seed: int, functions: int = 150) -> bytes:
    """Python that gzip cannot squeeze much (so a cut lands where the byte count says) and that passes the code
    filters (made-up words, not numbers: numeric soup is what ``alpha_per_token`` rejects)."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10)))

    out = []
    for _ in range(functions):
        a, b = word(), word()
        out.append(f"def {word()}_{word()}({a}, {b}):\n    return {a}.{word()}({b}, {word()}={b})\n")
    return "\n".join(out).encode()


def zip_with_damage(path: str) -> None:
    """good.py, bad.py (deflate stream corrupted), secret.py (flagged encrypted), later.py after them."""
    bodies = {
        "a_good.py": random_code(1),
        "b_bad.py": random_code(2),
        "c_secret.py": random_code(3),
        "d_later.py": random_code(4),
    }
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


def write_tar(path: str, members: dict[str, bytes]) -> None:
    """A .tar.gz of ``members`` (names may carry surrogate-escaped bytes: GNU format keeps them as bytes)."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def deep_chain(root: str, depth: int, name: str = "d") -> Iterator[str]:
    """``root/d/d/.../d`` ``depth`` folders deep (made one at a time: ``os.makedirs`` recurses past Python's limit),
    removed on exit: pytest's clean-up of old tmp folders recurses too, and would fail on it in every later session."""
    path = root
    try:
        for _ in range(depth):
            path = os.path.join(path, name)
            os.mkdir(path)
        yield path
    finally:
        remove_deep_chain(os.path.join(root, name))


def remove_deep_chain(top: str) -> None:
    """Remove a tree without recursion, each folder once (pytest's ``rmtree`` recurses per level and fails)."""
    if not os.path.isdir(top):
        return
    stack = [(top, False)]
    while stack:
        path, emptied = stack.pop()
        if emptied:
            os.rmdir(path)
            continue
        stack.append((path, True))
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, False))
                else:
                    os.remove(entry.path)


def fan_out(levels: int = 12, fan: int = 4) -> dict[str, bytes]:
    """``main`` inputs ``f1`` four times, ``f1`` inputs ``f2`` four times...: 4^12 = 16.7M inlines if unbounded."""
    files = {
        "main.tex": b"\\documentclass{article}\n\\begin{document}\n\\section{Bomb}\n"
        + b"\\input{f1}\n" * fan
        + b"\\end{document}\n"
    }
    for i in range(1, levels):
        files[f"f{i}.tex"] = f"Level {i} text.\n".encode() + f"\\input{{f{i + 1}}}\n".encode() * fan
    files[f"f{levels}.tex"] = b"The leaves of the tree.\n"
    return files
