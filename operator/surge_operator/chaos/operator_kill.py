"""operator-kill-9-mid-failover: the primary's nats-server gets SIGKILL while the failover
controller runs as its own OS process (`operator_process`), armed to SIGKILL itself inside
the transition it starts: after the standby's promotion, before the status records it. A
successor process is started at once (as a Deployment replaces a pod), restored from the
status the dead one left (still: east, epoch 0), and must finish the move exactly once.

Same two regions, at-least-once client and idempotent worker as `scenarios`; clients and
workers follow the status file's active region, as the operator's consumers follow the
MessagingCluster status. recovery_s runs from the primary's kill to the first write
acknowledged after it (by the new primary, once the successor recorded it); RPO is what
the killed process's promotion estimated (it prints that before acting). Besides the
checker: the epoch is 1 in the status and in the new primary's stream, with one history
entry, and processing order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from surge_operator.chaos.checker import check
from surge_operator.chaos.operator_driver import FailoverProcess, history
from surge_operator.chaos.regions import Regions, running_regions
from surge_operator.chaos.result import Result
from surge_operator.chaos.scenarios import (
    CONFIG,
    PIPELINE,
    Run,
    at_least_once_client,
    connect,
    idempotent_worker,
    recovery_s,
    settle,
    wait_mirror,
)
from surge_operator.failover.recovery import META_EPOCH
from surge_workers import provision

NAME = "operator-kill-9-mid-failover"
CRASH = "promoted"
#: Bound on a process's start-up and on the successor's move (a loaded 2-core machine).
WITHIN = 60.0


async def _follow(op: FailoverProcess, region: list[str], stop: asyncio.Event) -> None:
    """Keep `region[0]` at the status's active region (read every 50 ms, not per send)."""
    while not stop.is_set():
        region[0] = op.active() or region[0]
        await asyncio.sleep(0.05)


async def _first_tick(op: FailoverProcess) -> None:
    deadline = time.monotonic() + WITHIN
    while op.active() is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the failover process wrote no status in {WITHIN:.0f}s")
        await asyncio.sleep(0.1)


async def _epoch_in(regions: Regions, name: str) -> str | None:
    client = await connect(regions.servers[name].url)
    try:
        info = await client.jetstream(timeout=2.0).stream_info(PIPELINE.stream)
        return (info.config.metadata or {}).get(META_EPOCH)
    finally:
        await client.close()


async def _succeed(
    op: FailoverProcess, notes: dict[str, object], fault_at: float, failed: asyncio.Event
) -> None:
    """Wait for the armed process's crash, then start its successor. If it never crashes,
    `failed` stops the client (which would otherwise retry every id for a minute)."""
    try:
        died = await op.wait_crash(WITHIN)
    except BaseException:
        failed.set()
        raise
    notes["operator_died_after_kill_s"] = round(died - fault_at, 2)
    op.start()


def _violations(
    status: dict[str, Any], epoch_in_west: str | None, orders: int, run: Run
) -> list[str]:
    """What the scenario requires beyond the checker, from the status the process left."""
    broken: list[str] = []
    if status.get("failoverEpoch") != 1:
        broken.append(f"status epoch {status.get('failoverEpoch')}, expected 1")
    if history(status) != [("failover", "east", "west")]:
        broken.append(f"history {history(status)}, expected one failover east -> west")
    if epoch_in_west != "1":
        broken.append(f"west's stream epoch {epoch_in_west}, expected 1")
    if orders:
        broken.append(f"{orders} effects out of conversation order")
    if run.fault_at is not None and run.recovered_at is None:
        broken.append("no write accepted after the kill")
    return broken


async def operator_kill_mid_failover(count: int) -> Result:
    """SIGKILL of the primary a third of the way in, the failover process killed inside
    the promotion it starts; the old primary comes back later and must rejoin as a mirror."""
    notes: dict[str, object] = {"crash_point": CRASH}
    with (
        tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp,
        running_regions(["east", "west"], Path(tmp) / "regions") as regions,
    ):
        client = await connect(regions.servers["east"].url)
        await provision.provision_pipeline(client.jetstream(timeout=2.0), PIPELINE)
        await client.close()
        op = FailoverProcess(regions.endpoints(), PIPELINE, CONFIG, Path(tmp))
        region = ["east"]
        run = Run(regions, lambda: region[0])
        succession: asyncio.Task[None] | None = None
        failed = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            op.start(CRASH)
            await _first_tick(op)
            tasks = [
                asyncio.create_task(_follow(op, region, run.stop)),
                asyncio.create_task(idempotent_worker(run)),
            ]

            async def fault(i: int) -> None:
                nonlocal succession
                if i == count // 3:
                    regions.servers["east"].kill()
                    run.fault_at = time.monotonic()
                    succession = asyncio.create_task(_succeed(op, notes, run.fault_at, failed))

            await at_least_once_client(run, count, 200.0, fault, until=failed)
            if succession is not None:
                await succession
            regions.servers["east"].start()
            await wait_mirror(run, "east", within=WITHIN)
            await settle(run, within=30.0)
            epoch_in_west = await _epoch_in(regions, "west")
        finally:
            run.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if succession is not None and not succession.done():
                succession.cancel()
                with contextlib.suppress(BaseException):
                    await succession
            op.stop()
        moved, rpo = op.moved(), op.rpo()
        status = op.status()
        notes["epoch"] = status.get("failoverEpoch")
        notes["history"] = [list(h) for h in history(status)]
        if moved is not None:
            notes["successor_moved_after_start_s"] = round(moved.after_start_s, 2)
            notes["successor_moved_in_tick"] = moved.tick
        verdict = check(run.accepted, run.effects, run.absorbed)
        violations = _violations(status, epoch_in_west, verdict.order_violations, run)
    return Result(
        NAME,
        verdict,
        recovery_s(run),
        rpo,
        extra=notes,
        violations=tuple(violations),
    )
