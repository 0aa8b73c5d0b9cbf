"""Where a Decision is applied: the ScaleTarget protocol and local worker processes.

The operator implements `ScaleTarget` for a Kubernetes Deployment; `surge demo` uses
`LocalProcessTarget`, which runs real `surge-worker` processes. Scale-down sends SIGTERM
so a worker drains its in-flight messages before it exits; nothing is left behind on
`close()` (SIGKILL after the drain timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

log = structlog.get_logger("surge.scale")


class ScaleTarget(Protocol):
    """Something with a replica count the engine can read and set."""

    async def current(self) -> int:
        """Replicas asked for (running or starting)."""
        ...

    async def ready(self) -> int:
        """Replicas that serve traffic now."""
        ...

    async def scale(self, replicas: int) -> None:
        """Ask for `replicas`; returns once the request is made, not when it is done."""
        ...


class ScaleTargetError(Exception):
    """The target could not be scaled (process failed to start, API refused...)."""


@dataclass(slots=True)
class _Worker:
    process: asyncio.subprocess.Process
    started_at: float
    metrics_port: int


@dataclass
class LocalProcessTarget:
    """Real `surge-worker` processes on this machine, one per replica.

    A worker counts as ready `ready_after_s` after it started (the demo's stand-in for a
    readiness probe; the worker needs about that long to connect and subscribe).
    """

    env: Mapping[str, str]
    command: tuple[str, ...] = (
        sys.executable,
        "-c",
        "from surge_workers.cli import worker_main; worker_main()",
    )
    ready_after_s: float = 1.0
    drain_timeout_s: float = 10.0
    first_metrics_port: int = 0
    _workers: list[_Worker] = field(default_factory=list)
    _stopping: set[asyncio.Task[None]] = field(default_factory=set)
    _next_port: int = 0

    async def current(self) -> int:
        self._reap()
        return len(self._workers)

    async def ready(self) -> int:
        self._reap()
        now = time.monotonic()
        return sum(1 for w in self._workers if now - w.started_at >= self.ready_after_s)

    async def scale(self, replicas: int) -> None:
        self._reap()
        while len(self._workers) < replicas:
            await self._start_one()
        while len(self._workers) > replicas:
            # Newest first: it is the least likely to hold in-flight work.
            worker = self._workers.pop()
            task = asyncio.create_task(self._drain(worker))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def metrics_ports(self) -> list[int]:
        return [w.metrics_port for w in self._workers if w.metrics_port]

    async def close(self) -> None:
        """Drain every worker (SIGTERM, SIGKILL after the timeout) and wait for all."""
        workers, self._workers = self._workers, []
        await asyncio.gather(*(self._drain(w) for w in workers), *self._stopping)

    async def _start_one(self) -> None:
        env = dict(self.env)
        port = 0
        if self.first_metrics_port:
            port = self.first_metrics_port + self._next_port
            self._next_port += 1
        env["SURGE_METRICS_PORT"] = str(port)
        env.setdefault("SURGE_METRICS_HOST", "127.0.0.1")
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                # Own process group: a Ctrl-C in the terminal reaches us, and we drain the
                # workers in order instead of them dying mid-message.
                start_new_session=True,
            )
        except OSError as err:
            raise ScaleTargetError(f"cannot start worker: {err}") from err
        self._workers.append(_Worker(process, time.monotonic(), port))
        log.info("worker_started", pid=process.pid, replicas=len(self._workers))

    async def _drain(self, worker: _Worker) -> None:
        process = worker.process
        if process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self.drain_timeout_s)
        except TimeoutError:
            log.warning("worker_drain_timeout", pid=process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.info("worker_stopped", pid=process.pid, returncode=process.returncode)

    def _reap(self) -> None:
        """Forget workers that died on their own (the engine will start new ones)."""
        alive = [w for w in self._workers if w.process.returncode is None]
        for dead in set(map(id, self._workers)) - set(map(id, alive)):
            log.warning("worker_exited", worker=dead)
        self._workers = alive
