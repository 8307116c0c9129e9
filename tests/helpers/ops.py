"""Helpers for the operations tests: output digests, a real multi-node Ray cluster on loopback, process cleanup."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
import pyarrow.parquet as pq
import yaml

from pipelines.core.embedded_ray import kill_processes_naming
from pipelines.sources.commoncrawl import without_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
WINNOW = os.path.join(BIN, "winnow")
RAY = os.path.join(BIN, "ray")

# CommonCrawl without the trained quality models (they live outside the repository, which is what travels to the
# cluster) and with small batches so that an input is several batches: faults can land between them.
CC_CONFIG = yaml.safe_dump({"reader": {"batch_size": 4}, **without_models()}, sort_keys=False)


def write_cc_config(folder: str) -> str:
    path = os.path.join(folder, "cc-ops.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CC_CONFIG)
    return path


def row_digests(folder: str) -> list[tuple[str, str]]:
    """Sorted (id, sha1 of the whole row) over every Parquet file of ``folder``; duplicates stay visible."""
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        for row in pq.read_table(path).to_pylist():
            blob = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
            out.append((str(row["id"]), hashlib.sha1(blob).hexdigest()))
    return sorted(out)


def output_digest(out_root: str, source: str) -> dict[str, list[tuple[str, str]]]:
    base = os.path.join(out_root, source)
    return {kind: row_digests(os.path.join(base, kind)) for kind in ("docs", "rejected")}


def stray_files(out_root: str, source: str) -> list[str]:
    """Temporary files left in the output (a finished run must leave none)."""
    base = os.path.join(out_root, source)
    return sorted(p for p in glob.glob(os.path.join(base, "**", ".*tmp-*"), recursive=True))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_matching(marker: str) -> int:
    """SIGKILL every process whose command line contains ``marker``, and their descendants.

    Ray's workers rename themselves (``ray::IDLE``), so they are found as children of the raylet, not by name.
    Only processes of this test's own cluster match (its private ``--temp-dir``); `ray stop` would also kill the
    embedded Ray of other test sessions on the machine.
    """
    return kill_processes_naming(marker, spare=[p.pid for p in psutil.Process().parents()])


@dataclass
class Cluster:
    address: str
    temp_dir: str
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def ray_cluster(nodes: list[dict[str, float]], timeout_s: float = 120) -> Iterator[Cluster]:
    """A real Ray cluster on loopback: a head and one more raylet per entry of ``nodes`` (their custom resources).

    Every node gets 1 CPU, a private temp dir and token authentication with a fresh token (Ray >= 2.5x refuses
    unauthenticated raylets once a token exists in ~/.ray); everything started is killed on exit, also on failure.
    """
    temp_dir = tempfile.mkdtemp(
        prefix="wops-ray-", dir="/tmp"
    )  # short: Unix socket paths are limited to 107 bytes
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        "--object-store-memory=200000000",
    ]
    try:
        head, *others = nodes
        cmds = [
            [
                RAY,
                "start",
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--resources={json.dumps(head)}",
                *common,
            ]
        ]
        cmds += [
            [RAY, "start", f"--address=127.0.0.1:{port}", f"--resources={json.dumps(res)}", *common]
            for res in others
        ]
        for cmd in cmds:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
            if r.returncode:
                raise RuntimeError(f"{' '.join(cmd[:3])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        cluster = Cluster(
            address=f"127.0.0.1:{port}", temp_dir=temp_dir, env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
        )
        _wait_for_nodes(cluster, [k for n in nodes for k in n], timeout_s)
        yield cluster
    finally:
        kill_matching(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(cluster: Cluster, resources: list[str], timeout_s: float) -> None:
    """`ray start` may return before a raylet has registered: poll `ray status` until every node's resource shows."""
    deadline = time.monotonic() + timeout_s
    out = ""
    while time.monotonic() < deadline:
        r = subprocess.run(
            [RAY, "status", "--address", cluster.address],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out = r.stdout + r.stderr
        if r.returncode == 0 and all(f"/1.0 {name}" in out for name in resources):
            return
        time.sleep(1)
    raise RuntimeError(f"cluster did not show resources {resources} in {timeout_s}s: {out[-2000:]}")


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [WINNOW, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def warc_copies(folder: str, copies: int) -> list[str]:
    """``copies`` rounds of the fixture WARCs, each record with a per-copy WARC-Record-ID (same pages: the MinHash
    corpus stage then has real duplicates to move)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    os.makedirs(folder, exist_ok=True)
    out = []
    for i in range(copies):
        for src in sorted(glob.glob(os.path.join(REPO, "tests", "fixtures", "commoncrawl", "*.warc.gz"))):
            dest = os.path.join(folder, f"copy{i}-{os.path.basename(src)}")
            with open(src, "rb") as f, open(dest, "wb") as g:
                writer = WARCWriter(g, gzip=True)
                for rec in ArchiveIterator(f):
                    rid = rec.rec_headers.get_header("WARC-Record-ID")
                    rec.rec_headers.replace_header(
                        "WARC-Record-ID", rid.replace("urn:winnow:", f"urn:winnow:c{i}:")
                    )
                    writer.write_record(rec)
            out.append(dest)
    return out
