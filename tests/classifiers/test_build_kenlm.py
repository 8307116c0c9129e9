"""``classifiers/build_kenlm.sh`` installs nothing: with a build tool missing it names the packages and exits 3."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from tests.helpers.paths import REPO

SCRIPT = os.path.join(REPO, "classifiers", "build_kenlm.sh")


def _path_without_compilers(tmp_path) -> str:
    """A PATH with only bash, cat and tr: no cmake, no C++ compiler, no sudo, no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("bash", "cat", "tr"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    return str(bin_dir)


def test_missing_tools_are_named_and_nothing_is_installed(tmp_path):
    cache = tmp_path / "kenlm"
    res = subprocess.run(
        ["bash", SCRIPT, str(cache), "python"],
        env={"PATH": _path_without_compilers(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 3, res.stderr
    assert "missing cmake g++" in res.stderr
    assert re.search(r"sudo apt-get install -y cmake g\+\+", res.stderr)  # printed for the user, not run
    assert not cache.exists()  # stopped before downloading or building anything
    listed = subprocess.run(
        ["bash", SCRIPT, "--missing-apt"],
        env={"PATH": _path_without_compilers(tmp_path / "x")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and listed.stdout.split()[:2] == ["cmake", "g++"]


def test_script_never_runs_sudo_or_apt_get():
    code = [line for line in open(SCRIPT, encoding="utf-8") if not line.lstrip().startswith("#")]
    # the only mentions are inside the message (here-document) that tells the user what to run
    heredoc = "".join(code).split("<<EOF", 1)[1].split("\nEOF", 1)
    outside = "".join(code).split("<<EOF", 1)[0] + heredoc[1]
    assert "sudo" not in outside and "apt-get" not in outside and "dnf" not in outside
    assert "sudo apt-get install" in heredoc[0]
