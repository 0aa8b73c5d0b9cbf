"""Local worker processes: the `surge demo` implementation of the engine's ScaleTarget.

The Protocol itself is `surge_operator.engine.ScaleTarget` (the operator implements it for
a Kubernetes Deployment in `kube_scale`). `LocalProcessTarget` runs real `surge-worker`
processes. Scale-down sends SIGTERM
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from surge_operator.engine import ScaleTarget as ScaleTarget  # the engine's Protocol
from surge_workers.contract import Env
from surge_workers.lifetime import die_with_parent

log = structlog.get_logger("surge.scale")


class ScaleTargetError(Exception):
    """The target could not be scaled (process failed to start, API refused...)."""


@dataclass(slots=True)
class _Worker:
    process: asyncio.subprocess.Process
    started_at: float
    metrics_port: int
    ready: bool = False


def simulated_worker_env(
    url: str,
    *,
    stream: str,
    prefix: str,
    partitions: int,
    cluster: str,
    work_ms: float,
    concurrency: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a local `surge-worker` running the simulated handler (`surge
    demo`, the live bench): this process's environment, the pipeline, the handler's cost,
    and quiet JSON logs with metrics on loopback."""
    env = dict(os.environ)
    env.update(
        {
            Env.NATS_URL: url,
            Env.STREAM: stream,
            Env.SUBJECT_PREFIX: prefix,
            Env.PARTITIONS: str(partitions),
            Env.CLUSTER: cluster,
            Env.HANDLER: "surge_workers.handlers:simulated",
            Env.WORK_MS: f"{work_ms:g}",
            Env.CONCURRENCY: str(concurrency),
            Env.COMPLETIONS: "true",
            Env.DRAIN_TIMEOUT: "10",
            Env.LOG_LEVEL: "warning",
            Env.LOG_FORMAT: "json",
            Env.METRICS_HOST: "127.0.0.1",
            **(extra or {}),
        }
    )
    return env


def worker_command() -> tuple[str, ...]:
    """The `surge-worker` console script of this environment (same interpreter), or the
    module entry point when the script is not installed next to it."""
    script = Path(sys.executable).with_name("surge-worker")
    if script.exists():
        return (str(script),)
    return (sys.executable, "-c", "from surge_workers.cli import worker_main; worker_main()")


async def _probe_ready(port: int) -> bool:
    """GET /readyz on the worker's health port: 200 once it has joined its consumers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.3)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 0.5)
        return b" 200 " in status
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


@dataclass
class LocalProcessTarget:
    """Real `surge-worker` processes on this machine, one per replica.

    A worker counts as ready `ready_after_s` after it started (the demo's stand-in for a
    readiness probe; the worker needs about that long to connect and subscribe).
    """

    env: Mapping[str, str]
    command: tuple[str, ...] = field(default_factory=worker_command)

    ready_after_s: float = 1.0
    drain_timeout_s: float = 10.0
    #: Returns a free port for each new worker's health/metrics server (None: no probe).
    port_factory: Callable[[], int] | None = None
    #: Seconds from start to first ready, per worker (as often as `ready` is asked).
    startup_times: list[float] = field(default_factory=list)
    _workers: list[_Worker] = field(default_factory=list)
    _stopping: set[asyncio.Task[None]] = field(default_factory=set)

    async def current(self) -> int:
        self._reap()
        return len(self._workers)

    async def ready(self) -> int:
        """Workers whose /readyz answered 200 (or, without a health port, that have been
        up `ready_after_s`)."""
        self._reap()
        now = time.monotonic()
        for worker in self._workers:
            if worker.ready:
                continue
            if worker.metrics_port:
                worker.ready = await _probe_ready(worker.metrics_port)
            else:
                worker.ready = now - worker.started_at >= self.ready_after_s
            if worker.ready:
                self.startup_times.append(time.monotonic() - worker.started_at)
        return sum(1 for w in self._workers if w.ready)

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
        port = self.port_factory() if self.port_factory is not None else 0
        env[Env.METRICS_PORT] = str(port)
        env.setdefault(Env.METRICS_HOST, "127.0.0.1")
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
                preexec_fn=die_with_parent(),
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
