"""The operator's failover loop as a process of its own, so it can be killed with kill -9.

What `handlers.failover.failover_tick` does per MessagingCluster, with a JSON file for the
status it patches (activeRegion, failoverEpoch, history) and one for the failback
annotation: restore the real `FailoverController` from that status, tick it every probe
interval, write the outcome back after each tick (the status patch comes after the NATS
actions, which is the window a crash hits), clear the annotation once traffic is home.
Run it with `python -m surge_operator.chaos.operator_process`; `operator_driver` starts,
arms and reads it (the chaos suite and the crash tests share it).

``SURGE_CHAOS_CRASH`` makes the process SIGKILL itself at one point of a failover, a crash
no cleanup can soften:
    promoted   the standby's promotion finished in NATS, the status not yet written
    consumers  the standby's stream made writable and stamped with the new epoch, its
               consumers not yet created
    fenced     failback: the active region fenced, the original primary not yet promoted

Environment: SURGE_CHAOS_REGIONS (JSON list of {name, url, domain}, primary first),
SURGE_CHAOS_PIPELINE (JSON {stream, subject_prefix, partitions, duplicate_window}),
SURGE_CHAOS_PROBE (JSON {probe_interval, failure_threshold}), SURGE_CHAOS_STATUS,
SURGE_CHAOS_ANNOTATIONS (paths), SURGE_CHAOS_CRASH (optional).
Each tick prints one JSON line (event "tick") on stdout, and each move one (event
"acting", with the decision's estimated RPO) as it starts: a process killed inside the
move never prints that tick's line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from surge_operator.failover import (
    FailoverController,
    NatsRegionEdge,
    PromotionResult,
    RegionEndpoint,
    TickOutcome,
    promotion,
)
from surge_operator.policy.failover import FailoverConfig, FailoverDecision
from surge_workers.contract import Priority
from surge_workers.pipeline import PipelineConfig

P = ParamSpec("P")
R = TypeVar("R")

CRASH_POINTS = ("promoted", "consumers", "fenced")
FAILBACK_ANNOTATION = "surge.dev/failback"


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


def announce_moves() -> None:
    """Print each move's decision (action, target, epoch, estimated RPO) before acting."""
    carry_out = FailoverController._carry_out

    async def announced(
        self: FailoverController, decision: FailoverDecision, floors: Mapping[Priority, int] | None
    ) -> PromotionResult:
        line = {
            "event": "acting",
            "at": time.time(),
            "action": decision.action.value,
            "target": decision.target,
            "epoch": decision.epoch,
            "rpo": decision.rpo,
        }
        print(json.dumps(line), flush=True)
        return await carry_out(self, decision, floors)

    FailoverController._carry_out = announced  # type: ignore[method-assign]


def arm(point: str) -> None:
    if point == "promoted":
        NatsRegionEdge.promote = die_after(point, NatsRegionEdge.promote)  # type: ignore[method-assign, assignment]
    elif point == "consumers":
        promotion._ensure_consumers = die_before(point, promotion._ensure_consumers)  # type: ignore[assignment]
    elif point == "fenced":
        # failback() fences, waits for the catch-up, then calls this module's promote
        promotion.promote = die_before(point, promotion.promote)  # type: ignore[assignment]
    elif point:
        raise SystemExit(f"unknown SURGE_CHAOS_CRASH {point!r}; known: {', '.join(CRASH_POINTS)}")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)


def write_status(path: Path, status: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)  # atomic, as a status patch is


def patched(status: Mapping[str, Any], outcome: TickOutcome) -> dict[str, Any]:
    """The status after a tick: active region and epoch from the outcome, its history
    entry (if any) appended. Pure."""
    history = list(status.get("history", []))
    if outcome.history_entry is not None:
        history.append(outcome.history_entry.model_dump(by_alias=True, mode="json"))
    return {
        "activeRegion": outcome.active_region,
        "failoverEpoch": outcome.epoch,
        "history": history,
    }


def tick_line(outcome: TickOutcome) -> dict[str, Any]:
    """What one tick printed: its outcome, and when it was done (after the actions and
    the status write). Pure but for the clock."""
    return {
        "event": "tick",
        "at": outcome.at,
        "done": time.time(),
        "active": outcome.active_region,
        "epoch": outcome.epoch,
        "moved": outcome.moved,
        "rpo": outcome.rpo,
        "reason": outcome.condition_reason,
        "error": outcome.error.message if outcome.error else None,
        "mirrors": [(m.region, m.action.value, m.recovered) for m in outcome.mirrors],
    }


def controller_from_env(
    env: Mapping[str, str], status: Mapping[str, Any]
) -> tuple[FailoverController, FailoverConfig, list[RegionEndpoint]]:
    """The controller as the operator builds it, restored from status (active, epoch)."""
    regions = [RegionEndpoint(**r) for r in json.loads(env["SURGE_CHAOS_REGIONS"])]
    pipeline = PipelineConfig(**json.loads(env["SURGE_CHAOS_PIPELINE"]))
    config = FailoverConfig(**json.loads(env["SURGE_CHAOS_PROBE"]))
    controller = FailoverController(
        cluster=f"process/{pipeline.stream}",
        endpoints=regions,
        primary=regions[0].name,
        pipeline=pipeline,
        config=config,
        active=status.get("activeRegion"),
        epoch=status.get("failoverEpoch", 0),
        probe_timeout=0.2,
    )
    return controller, config, regions


async def run() -> None:
    status_path = Path(os.environ["SURGE_CHAOS_STATUS"])
    annotations = Path(os.environ["SURGE_CHAOS_ANNOTATIONS"])
    arm(os.environ.get("SURGE_CHAOS_CRASH", ""))
    announce_moves()
    status = read_json(status_path)
    controller, config, regions = controller_from_env(os.environ, status)
    print(json.dumps({"event": "started", "at": time.time(), "status": status}), flush=True)
    while True:
        requested = read_json(annotations).get(FAILBACK_ANNOTATION) == "requested"
        outcome = await controller.tick(failback_requested=requested)
        status = patched(status, outcome)
        write_status(status_path, status)
        print(json.dumps(tick_line(outcome)), flush=True)
        if requested and outcome.moved and outcome.active_region == regions[0].name:
            clear(annotations)
        await asyncio.sleep(config.probe_interval)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
