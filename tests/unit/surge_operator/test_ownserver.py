"""ownserver: a readiness answer counts only from the child that holds the port."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from surge_operator import ownserver
from surge_operator.ownserver import ServerStartError, listens_on, start_own_server
from surge_workers.natsserver import free_port


def _http_child(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def stranger() -> Iterator[int]:
    """Another server answering 200 on a port, as the one that took the bench's port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_listens_on_tells_the_holder_of_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        assert not listens_on(os.getpid(), port)  # bound, not listening
        sock.listen()
        assert listens_on(os.getpid(), port)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not listens_on(child.pid, port)
        finally:
            child.kill()
            child.wait()
    assert not listens_on(os.getpid(), port)


def test_a_child_that_loses_its_port_is_started_again_on_a_new_one(
    stranger: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([stranger, free_port()])
    monkeypatch.setattr(ownserver, "free_port", lambda: next(ports))
    started: list[int] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        started.append(port)
        return _http_child(port)

    proc, port = asyncio.run(start_own_server(start, "/", within=30.0))
    try:
        # The stranger answered 200 on the first port; only the second child counts.
        assert started == [stranger, port]
        assert listens_on(proc.pid, port)
    finally:
        proc.kill()
        proc.wait()


def test_gives_up_after_the_attempts(stranger: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownserver, "free_port", lambda: stranger)
    with pytest.raises(ServerStartError, match="exited while starting 2 times"):
        asyncio.run(start_own_server(_http_child, "/", within=30.0, attempts=2))
