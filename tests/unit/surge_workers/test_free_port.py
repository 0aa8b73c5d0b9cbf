"""free_port: drawn below the ephemeral range, so no outbound connection can take it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from surge_workers import natsserver
from surge_workers.natsserver import free_port


def test_a_free_port_is_below_the_ephemeral_range_and_nodeports_and_can_be_bound() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        port = free_port()
        assert 10000 <= port < min(start, 30000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_never_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        # Draw from a range of exactly the one busy port: every draw must be refused.
        monkeypatch.setattr(natsserver, "_DRAWN_PORTS_FROM", busy)
        monkeypatch.setattr(natsserver, "_DRAWN_PORTS_BELOW", busy + 1)
        monkeypatch.setattr(natsserver, "_ephemeral_start", lambda: 65536)
        assert free_port() != busy


def test_with_no_room_below_the_ephemeral_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(natsserver, "_ephemeral_start", lambda: 1024)
    port = free_port()
    assert port >= 1024
