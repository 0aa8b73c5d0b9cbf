"""The operator's failover loop as a process of its own, so a test can kill -9 it.

What `handlers.failover.failover_tick` does per MessagingCluster, with a JSON file for the
status it patches (activeRegion, failoverEpoch, history) and one for the failback
annotation: restore the real `FailoverController` from that status, tick it every probe
interval, write the outcome back after each tick (the status patch comes after the NATS
actions, which is the window a crash hits), clear the annotation once traffic is home.

``SURGE_TEST_CRASH`` makes the process SIGKILL itself at one point of a failover, a crash
no cleanup can soften:
    promoted   the standby's promotion finished in NATS, the status not yet written
    consumers  the standby's stream made writable and stamped with the new epoch, its
               consumers not yet created
    fenced     failback: the active region fenced, the original primary not yet promoted

Environment: SURGE_TEST_REGIONS (JSON list of {name, url, domain}, primary first),
SURGE_TEST_STATUS, SURGE_TEST_ANNOTATIONS (paths), SURGE_TEST_CRASH (optional).
Each tick prints one JSON line (event "tick") on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from tests.integration.failover_support import CONFIG, controller_on

from surge_operator.failover import NatsRegionEdge, RegionEndpoint, TickOutcome, promotion

P = ParamSpec("P")
R = TypeVar("R")


def die(point: str) -> None:
    print(json.dumps({"event": "crash", "point": point, "at": time.time()}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def die_before(point: str, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        die(point)
        return await fn(*args, **kwargs)

    return wrapped


def die_after(point: str, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await fn(*args, **kwargs)
        die(point)
        return result

    return wrapped


def arm(point: str) -> None:
    if point == "promoted":
        NatsRegionEdge.promote = die_after(point, NatsRegionEdge.promote)  # type: ignore[method-assign, assignment]
    elif point == "consumers":
        promotion._ensure_consumers = die_before(point, promotion._ensure_consumers)  # type: ignore[assignment]
    elif point == "fenced":
        # failback() fences, waits for the catch-up, then calls this module's promote
        promotion.promote = die_before(point, promotion.promote)  # type: ignore[assignment]
    elif point:
        raise SystemExit(f"unknown SURGE_TEST_CRASH {point!r}")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)  # atomic, as a status patch is


def patched(status: dict[str, Any], outcome: TickOutcome) -> dict[str, Any]:
    history = list(status.get("history", []))
    if outcome.history_entry is not None:
        history.append(outcome.history_entry.model_dump(by_alias=True, mode="json"))
    return {
        "activeRegion": outcome.active_region,
        "failoverEpoch": outcome.epoch,
        "history": history,
    }


async def run() -> None:
    regions = [RegionEndpoint(**r) for r in json.loads(os.environ["SURGE_TEST_REGIONS"])]
    status_path = Path(os.environ["SURGE_TEST_STATUS"])
    annotations = Path(os.environ["SURGE_TEST_ANNOTATIONS"])
    arm(os.environ.get("SURGE_TEST_CRASH", ""))
    status = read_json(status_path)
    controller = controller_on(
        regions, active=status.get("activeRegion"), epoch=status.get("failoverEpoch", 0)
    )
    print(json.dumps({"event": "started", "at": time.time(), "status": status}), flush=True)
    while True:
        requested = read_json(annotations).get("surge.dev/failback") == "requested"
        outcome = await controller.tick(failback_requested=requested)
        status = patched(status, outcome)
        write_status(status_path, status)
        print(
            json.dumps(
                {
                    "event": "tick",
                    "at": outcome.at,
                    "done": time.time(),  # after the actions and the status write
                    "active": outcome.active_region,
                    "epoch": outcome.epoch,
                    "moved": outcome.moved,
                    "reason": outcome.condition_reason,
                    "error": outcome.error.message if outcome.error else None,
                    "mirrors": [(m.region, m.action.value, m.recovered) for m in outcome.mirrors],
                }
            ),
            flush=True,
        )
        if requested and outcome.moved and outcome.active_region == regions[0].name:
            clear(annotations)
        await asyncio.sleep(CONFIG.probe_interval)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
