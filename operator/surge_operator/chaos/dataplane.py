"""One data-plane chaos run: NATS, real workers and gateways, clients, a fault, the check.

`run_plane` provisions the pipeline on the given NATS, starts the worker and gateway
processes (`stage.Stage`), sends the clients' traffic through the gateways while the
scenario's `fault(plane, i)` runs before message i, lets the scenario `heal`, waits
(bounded) until everything accepted took effect or was dead-lettered, and ends with the
checker. Poison messages accepted must be in the dead-letter stream, once; anything else
accepted must have been stored, once.

Recovery time: see `recovery_time`.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from surge_operator.chaos.checker import check
from surge_operator.chaos.clients import Traffic, send_traffic
from surge_operator.chaos.effects import (
    Stored,
    dead_lettered,
    read_effects,
    transcript_order_violations,
)
from surge_operator.chaos.handler import ABSORBED_SUBJECT
from surge_operator.chaos.result import Result
from surge_operator.chaos.stage import Stage
from surge_workers import provision
from surge_workers.contract import PRIORITIES, dead_letter_stream, transcripts_bucket
from surge_workers.dlq import DeadLetter
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig, PriorityPolicy

FAST = PriorityPolicy(ack_wait=4.0, max_deliver=5, backoff=(0.1, 0.2, 0.4))


def chaos_pipeline(**overrides: object) -> PipelineConfig:
    """Short ack wait (a killed worker's messages come back within seconds) and small
    reservations (the replies stream is off: the chaos workers run no composer)."""
    fields: dict[str, object] = {
        "stream": "CHAOS",
        "subject_prefix": "chaos",
        "partitions": 4,
        "duplicate_window": 120.0,
        "policies": dict.fromkeys(PRIORITIES, FAST),
        "composer": False,
        "replies_max_bytes": 1 << 20,
    }
    fields.update(overrides)
    return PipelineConfig(**fields)  # type: ignore[arg-type]


@dataclass
class Plane:
    """What a fault can touch."""

    stage: Stage
    urls: Sequence[str]
    faults: list[float] = field(default_factory=list)  # wall clock of each fault
    notes: dict[str, object] = field(default_factory=dict)
    #: Set by a scenario that measures its own recovery (or RPO) instead of late effects.
    recovery_s: float | None = None
    rpo: int | None = None
    #: What the clients did so far (filled in as they go).
    traffic: Traffic = field(default_factory=Traffic)
    #: Delayed fault actions (a replacement, a SIGCONT), awaited before the heal.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def mark_fault(self) -> None:
        self.faults.append(time.time())


def later(plane: Plane, delay: float, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` after `delay` s without holding up the client that triggered it."""

    async def run() -> None:
        await asyncio.sleep(delay)
        await action()

    plane.tasks.append(asyncio.create_task(run()))


Fault = Callable[[Plane, int], Awaitable[None]]
Heal = Callable[[Plane], Awaitable[None]]


async def _quiet(_: Exception) -> None:
    """Connection errors while a server is down are the scenario, not news."""


async def connect(urls: Sequence[str], **auth: str) -> NatsClient:
    return await nats.connect(
        servers=list(urls), connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
        error_cb=_quiet, **auth,
    )  # fmt: skip


async def _counts(nc: NatsClient, pipeline: PipelineConfig) -> tuple[int, int]:
    js = nc.jetstream(timeout=2.0)
    stored = (await js.stream_info(f"KV_{transcripts_bucket(pipeline.stream)}")).state.messages
    dead = (await js.stream_info(dead_letter_stream(pipeline.stream))).state.messages
    return stored, dead


async def _settle(
    nc: NatsClient, pipeline: PipelineConfig, traffic: Traffic, within: float
) -> None:
    """Until the bucket and the dead letters hold at least what was accepted (bounded)."""
    accepted = traffic.accepted()
    poison = sum(1 for i in accepted if traffic.sent[i].poison)
    want = (len(accepted) - poison, poison)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            stored, dead = await _counts(nc, pipeline)
            # The transcripts bucket holds only t.* keys: one write per stored message.
            if stored >= want[0] and dead >= want[1]:
                return
        await asyncio.sleep(0.5)


def recovery_time(
    faults: Sequence[float], traffic: Traffic, effects: Sequence[Stored]
) -> float | None:
    """The longest recovery over the faults: from a fault to the last effect before the
    next fault that came late (later after its first send than max(1 s, 3 x the p99
    before the first fault)). A killed worker's messages wait out the ack wait, a killed
    gateway's clients retry: both show here. 0 = nobody waited."""
    if not faults:
        return None
    when = {s.effect.msg_id: s.at for s in effects}
    latencies = [(when[i] - s.first_sent, when[i]) for i, s in traffic.sent.items() if i in when]
    before = sorted(lat for lat, at in latencies if at < faults[0])
    p99 = before[int(0.99 * (len(before) - 1))] if before else 0.0
    late = max(1.0, 3 * p99)
    worst = 0.0
    for start, end in zip(faults, [*faults[1:], float("inf")], strict=True):
        last = max((at for lat, at in latencies if start <= at < end and lat > late), default=start)
        worst = max(worst, last - start)
    return worst


@contextlib.contextmanager
def one_server() -> Iterator[tuple[str, Path]]:
    """A fresh nats-server in a temporary directory, for scenarios that need no more: its
    URL and a stage root (for `run_plane`) beside its store; both gone afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp,
        NatsServer(Path(tmp) / "n") as server,
    ):
        yield server.url, Path(tmp) / "stage"


async def run_plane(
    name: str,
    *,
    urls: Sequence[str],
    root: Path,
    count: int,
    rate: float,
    fault: Fault,
    heal: Heal | None = None,
    pipeline: PipelineConfig | None = None,
    workers: int = 3,
    gateways: int = 2,
    poison_every: int = 0,
    schedule: Sequence[float] | None = None,
    auth: Mapping[str, str] | None = None,
    role_env: Mapping[str, Mapping[str, str]] | None = None,
    settle_within: float = 60.0,
    on_traffic_done: Callable[[Plane, Traffic], Awaitable[None]] | None = None,
) -> Result:
    pipeline = pipeline or chaos_pipeline()
    nc = await connect(urls, **dict(auth or {}))
    stage = Stage(pipeline, urls, root, role_env=role_env or {})
    plane = Plane(stage, urls)
    try:
        await provision.provision_pipeline(nc.jetstream(timeout=5.0), pipeline)
        absorbed_by_store = 0

        async def on_absorbed(_: Msg) -> None:
            nonlocal absorbed_by_store
            absorbed_by_store += 1

        await nc.subscribe(ABSORBED_SUBJECT, cb=on_absorbed)
        started = [stage.start("worker") for _ in range(workers)]
        started += [stage.start("gateway") for _ in range(gateways)]
        await stage.wait_ready(started)

        async def before(i: int) -> None:
            await fault(plane, i)

        traffic = await send_traffic(
            stage.gateway_urls,
            traffic=plane.traffic,
            count=count,
            rate=rate,
            poison_every=poison_every,
            before_send=before,
            schedule=schedule,
        )
        await asyncio.gather(*plane.tasks)
        if on_traffic_done is not None:
            await on_traffic_done(plane, traffic)
        if heal is not None:
            await heal(plane)
        await _settle(nc, pipeline, traffic, settle_within)
        js = nc.jetstream(timeout=5.0)
        effects = await read_effects(js, pipeline.stream)
        dead = await dead_lettered(js, pipeline.stream, pipeline.subject_prefix)
        absorbed_by_cache = sum(
            p.metric("surge_worker_processed_total", {"outcome": "duplicate"})
            for p in stage.live("worker")
        )
    finally:
        await asyncio.to_thread(stage.close)
        with contextlib.suppress(Exception):
            await nc.close()
    return verdict(
        name, plane, traffic, effects, dead,
        absorbed=traffic.duplicates + absorbed_by_store + int(absorbed_by_cache),
    )  # fmt: skip


def verdict(
    name: str,
    plane: Plane,
    traffic: Traffic,
    effects: Sequence[Stored],
    letters: Sequence[DeadLetter],
    *,
    absorbed: int,
) -> Result:
    dead = [letter.msg_id for letter in letters]
    accepted = traffic.accepted()
    poison = {i for i in accepted if traffic.sent[i].poison}
    dead_counts = Counter(dead)
    # A poison message has two ways to go wrong: never dead-lettered (lost), or
    # dead-lettered more than once (a double effect); and it must never be stored.
    stored_effects = [s.effect for s in effects]
    v = check(accepted - poison, [e for e in stored_effects if e.msg_id not in poison], absorbed)
    poison_lost = sorted(i for i in poison if dead_counts[i] == 0)
    poison_doubled = sum(n - 1 for n in dead_counts.values() if n > 1)
    poison_stored = sum(1 for e in stored_effects if e.msg_id in poison)
    v = replace(
        v,
        accepted=v.accepted + len(poison),
        lost=v.lost + len(poison_lost),
        double_effects=v.double_effects + poison_doubled + poison_stored,
        lost_ids=v.lost_ids + tuple(poison_lost[:10]),
    )
    extra: dict[str, object] = {
        "sent": len(traffic.sent),
        # order_violations is processing order (a redelivered message stored after a newer
        # one); this is the transcript's order, which must be the client's.
        "transcript_order_violations": transcript_order_violations(effects),
        "refused_answers": {str(k): n for k, n in sorted(traffic.refusals.items())},
        **plane.notes,
    }
    # A lost message that sits in the dead letters was parked (deliveries used up while
    # NATS was away), not vanished: say which it was.
    extra["lost_but_dead_lettered"] = sum(1 for i in v.lost_ids if dead_counts[i] > 0)
    # ...and why the worker parked it (its reason header), so a run that fails says it.
    why = {letter.msg_id: letter.reason for letter in letters}
    parked = {i: why[i] for i in v.lost_ids if i in why and i not in poison}
    if parked:
        extra["lost_dead_letter_reasons"] = parked
    if poison:
        extra["poison_accepted"] = len(poison)
        extra["dead_lettered"] = len(dead)
    recovery = plane.recovery_s
    if recovery is None:
        recovery = recovery_time(plane.faults, traffic, effects)
    return Result(name, v, recovery, plane.rpo, extra)
