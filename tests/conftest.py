"""Shared fixtures: paths to fixtures and ../shared/corpus, and one local Ray for the whole session."""

from __future__ import annotations

import socket

import pytest

from tests.helpers.paths import CORPUS, FIXTURES, REPO, SHARED, corpus_path  # noqa: F401


@pytest.fixture
def ray_local():
    """An embedded Ray (2 CPUs, no dashboard), started once and kept for the session (Ray stops at exit); started
    again when a test in between shut Ray down (the cluster and mixture tests end with ``ray.shutdown()``)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Unit tests never reach the network: any connection outside loopback fails loudly."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1", "0.0.0.0")) \
                and not host.startswith("/"):
            raise RuntimeError(f"network access in a test: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
