"""Start a child HTTP server on a fresh loopback port and make sure the server that answers
is that child.

`free_port()` closes its probe socket before the child binds, so another process can take
the port in between. Then the child exits ("address already in use") while the other
process answers the readiness probe, and a benchmark would measure a stranger (seen: a 404
to every request after a 200 on /readyz). A readiness answer therefore counts only while
the child is alive and holds the listening socket itself (Linux /proc); a child that dies
while starting is started again on a new port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from surge_workers.natsserver import free_port

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


class ServerStartError(RuntimeError):
    """The child never served on a port of its own."""


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port``."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return False
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in wanted:
                    return True
    return False


async def _ready(url: str) -> bool:
    import aiohttp

    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(url) as resp,
        ):
            return resp.status == 200
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, 10 s to finish, then SIGKILL; reaped either way."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def start_own_server(
    start: Callable[[int], subprocess.Popen[bytes]],
    ready_path: str,
    *,
    within: float = 30.0,
    attempts: int = 3,
) -> tuple[subprocess.Popen[bytes], int]:
    """``start(port)`` on a fresh port until the child itself answers ``ready_path`` with 200;
    returns the child and its port. A child that exits while starting (its port taken) is
    started again on a new port, at most ``attempts`` times."""
    exits: list[int] = []
    for _ in range(attempts):
        port = free_port()
        proc = start(port)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and proc.poll() is None:
            url = f"http://127.0.0.1:{port}{ready_path}"
            # Held before and after the answer: the listener cannot change hands while the
            # child still holds it, so the 200 was the child's.
            if listens_on(proc.pid, port) and await _ready(url) and listens_on(proc.pid, port):
                return proc, port
            await asyncio.sleep(0.1)
        if proc.poll() is None:  # alive but never ready: not a port race
            stop(proc)
            raise ServerStartError(f"not ready on port {port} within {within}s")
        exits.append(proc.returncode)
    raise ServerStartError(f"exited while starting {attempts} times (exit codes {exits})")
