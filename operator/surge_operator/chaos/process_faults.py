"""Data-plane scenarios on one real nats-server: faults of the worker and gateway
processes, and poison messages. Each replaced process is started again the way a
Deployment replaces a pod (same command, same environment; a gateway on its old port, as
behind a Service)."""

from __future__ import annotations

import asyncio
import signal
import time

from surge_operator.chaos.clients import surge_schedule
from surge_operator.chaos.dataplane import Plane, later, one_server, run_plane
from surge_operator.chaos.result import Result
from surge_operator.chaos.stage import Proc


async def _replace(plane: Plane, role: str, port: int | None = None) -> None:
    """Start a replacement and wait until it is ready; the start-up time is noted."""
    proc = plane.stage.start(role, port)
    await plane.stage.wait_ready([proc])
    took = round(time.monotonic() - proc.started_at, 2)
    starts = plane.notes.setdefault(f"{role}_restart_ready_s", [])
    assert isinstance(starts, list)
    starts.append(took)


def _freeze(plane: Plane, proc: Proc, seconds: float) -> None:
    """SIGSTOP `proc` now and SIGCONT it `seconds` later, noted as `sigstop_s`."""
    proc.signal(signal.SIGSTOP)
    plane.notes["sigstop_s"] = seconds

    async def thaw() -> None:
        proc.signal(signal.SIGCONT)

    later(plane, seconds, thaw)


async def worker_surge(count: int) -> Result:
    """A 4x surge of arrivals in the middle third; meanwhile one worker is killed with
    SIGKILL (and replaced a second later), another is stopped with SIGSTOP for longer than
    the ack wait (its messages are redelivered to the others) and continued, and a third
    kill -9 lands at the peak. Anything a dead or frozen worker held comes back and is
    stored once."""
    rate = 40.0

    async def fault(plane: Plane, i: int) -> None:
        workers = plane.stage.live("worker")
        if i == count // 4:
            plane.mark_fault()
            workers[0].kill()
            later(plane, 1.0, lambda: _replace(plane, "worker"))
        elif i == count // 2:
            plane.mark_fault()
            _freeze(plane, workers[-1], 6.0)
        elif i == 5 * count // 8:
            plane.mark_fault()
            workers[1].kill()
            later(plane, 1.0, lambda: _replace(plane, "worker"))

    with one_server() as (url, root):
        return await run_plane(
            "worker-surge-kill-stop",
            urls=[url],
            root=root,
            count=count,
            rate=rate,
            schedule=surge_schedule(count, rate, 4.0),
            fault=fault,
        )


async def gateway_kill(count: int) -> Result:
    """SIGKILL of a gateway in the middle of requests, twice (one of each of the two),
    each replaced on its port a second later. Clients retry the same id on the other
    gateway: a request stored but never answered comes back as `duplicate: true`."""

    async def fault(plane: Plane, i: int) -> None:
        if i in (count // 3, 2 * count // 3):
            # The second kill waits for the first replacement: two gateways are lost one
            # after the other, never both at once.
            await asyncio.gather(*plane.tasks)
            plane.mark_fault()
            victim = plane.stage.live("gateway")[0]  # the oldest: first one, then the other
            victim.kill()
            later(plane, 1.0, lambda: _replace(plane, "gateway", victim.port))

    with one_server() as (url, root):
        return await run_plane(
            "gateway-kill-9",
            urls=[url],
            root=root,
            count=count,
            rate=80.0,
            fault=fault,
        )


async def gateway_freeze(count: int) -> Result:
    """SIGSTOP of one gateway for 8 s with requests in flight, then SIGCONT. Its sockets
    stay open, so nothing is refused: clients give up after their 5 s timeout and retry
    the same id on the other gateway, and the woken gateway finishes what it held (its
    late answers and the retries meet in the dedup window)."""

    async def fault(plane: Plane, i: int) -> None:
        if i == count // 2:
            plane.mark_fault()
            _freeze(plane, plane.stage.live("gateway")[0], 8.0)

    with one_server() as (url, root):
        return await run_plane(
            "gateway-sigstop",
            urls=[url],
            root=root,
            count=count,
            rate=80.0,
            fault=fault,
        )


async def poison(count: int) -> Result:
    """1 % of the messages can never be processed: each must reach the dead-letter stream
    once, and every other message must be stored once."""

    async def fault(plane: Plane, i: int) -> None:
        if i == 0:
            plane.mark_fault()

    with one_server() as (url, root):
        return await run_plane(
            "poison-1pct",
            urls=[url],
            root=root,
            count=count,
            rate=80.0,
            poison_every=100,
            fault=fault,
        )
