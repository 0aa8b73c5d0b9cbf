"""`surge load`: an open-loop load generator with end-to-end latency per priority.

Open loop: arrivals follow the profile's clock and never wait for earlier messages to be
acknowledged (a closed loop would slow down exactly when the system does and hide the
surge). Profiles are pure functions of time (``rate_at``); arrivals are a seeded
non-homogeneous Poisson process (thinning), or the rows of a trace CSV.

Latency: every message carries Surge-Enqueued-At; workers started with
SURGE_COMPLETIONS=true announce each finished message on a core-NATS subject with that
timestamp, and the generator records done - enqueued per priority. Through a gateway the
NATS connection is optional (a client of a cluster often cannot reach its NATS): without
one, the report counts what the gateway accepted and refused, and "done" is not measured.

Trace CSV: header row, columns ``t`` (seconds from start, required), ``priority``,
``conversation_id``, ``tenant``, ``size`` (all optional).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from surge_workers.contract import (
    PRIORITIES,
    Priority,
    completion_subject,
    format_enqueued_at,
    message_headers,
    message_subject,
)
from surge_workers.errors import ConfigError

Profile = Literal["steady", "surge", "diurnal"]
PROFILES: tuple[Profile, ...] = ("steady", "surge", "diurnal")
DEFAULT_MIX: dict[Priority, float] = {
    Priority.CRITICAL: 0.1,
    Priority.NORMAL: 0.6,
    Priority.BULK: 0.3,
}


@dataclass(frozen=True)
class LoadSpec:
    profile: Profile = "steady"
    rate: float = 100.0  # base arrivals per second
    duration: float = 30.0
    surge_factor: float = 5.0  # surge: peak = rate * factor
    surge_start: float = 0.3  # surge: start, as a fraction of the duration
    surge_length: float = 0.3  # surge: length, as a fraction of the duration
    diurnal_amplitude: float = 0.8  # diurnal: rate * (1 + a*sin), one period per run
    mix: dict[Priority, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    conversations: int = 500
    tenants: tuple[str, ...] = ("acme", "globex", "initech")
    size: int = 256
    seed: int = 7

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"profile {self.profile!r}: choose one of {', '.join(PROFILES)}")
        if self.rate <= 0 or self.duration <= 0:
            raise ConfigError("rate and duration must be > 0")
        if not any(w > 0 for w in self.mix.values()):
            raise ConfigError("mix: at least one priority needs a positive weight")


def rate_at(spec: LoadSpec, t: float) -> float:
    """Arrival rate (msg/s) of the profile at ``t`` seconds into the run (pure)."""
    if spec.profile == "steady":
        return spec.rate
    if spec.profile == "surge":
        start = spec.surge_start * spec.duration
        end = start + spec.surge_length * spec.duration
        ramp = max(0.5, 0.05 * spec.duration)  # a surge arrives fast, not instantly
        if t < start or t > end + ramp:
            return spec.rate
        if t < start + ramp:
            level = (t - start) / ramp
        elif t > end:
            level = 1.0 - (t - end) / ramp
        else:
            level = 1.0
        return spec.rate * (1.0 + (spec.surge_factor - 1.0) * level)
    # diurnal: one compressed "day" per run, trough first
    phase = 2 * math.pi * t / spec.duration
    return max(0.0, spec.rate * (1.0 - spec.diurnal_amplitude * math.cos(phase)))


def peak_rate(spec: LoadSpec) -> float:
    if spec.profile == "surge":
        return spec.rate * spec.surge_factor
    if spec.profile == "diurnal":
        return spec.rate * (1.0 + spec.diurnal_amplitude)
    return spec.rate


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds from start
    priority: Priority
    conversation_id: str
    tenant: str
    size: int


def arrivals(spec: LoadSpec) -> Iterator[Arrival]:
    """Seeded non-homogeneous Poisson arrivals (Lewis-Shedler thinning)."""
    rng = random.Random(spec.seed)
    ceiling = peak_rate(spec)
    priorities = [p for p in PRIORITIES if spec.mix.get(p, 0) > 0]
    weights = [spec.mix[p] for p in priorities]
    t = 0.0
    while True:
        t += rng.expovariate(ceiling)
        if t >= spec.duration:
            return
        if rng.random() * ceiling > rate_at(spec, t):
            continue
        # Few hot conversations and a long tail, like real support traffic.
        conversation = int(spec.conversations * rng.random() ** 2)
        yield Arrival(
            at=t,
            priority=rng.choices(priorities, weights)[0],
            conversation_id=f"conv-{conversation}",
            tenant=spec.tenants[conversation % len(spec.tenants)],
            size=spec.size,
        )


def trace_row(row: dict[str, str], number: int, default_size: int = 256) -> Arrival:
    """One CSV row; missing optional columns get defaults (pure, for tests)."""
    return Arrival(
        at=float(row["t"]),
        priority=Priority((row.get("priority") or "normal").strip()),
        conversation_id=(row.get("conversation_id") or f"conv-{number}").strip(),
        tenant=(row.get("tenant") or "acme").strip(),
        size=int(row.get("size") or default_size),
    )


def load_trace(path: str | Path, default_size: int = 256) -> list[Arrival]:
    rows: list[Arrival] = []
    try:
        with open(path, newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    rows.append(trace_row(row, number, default_size))
                except (KeyError, ValueError) as err:
                    raise ConfigError(f"{path}:{number}: {err}") from err
    except OSError as err:
        raise ConfigError(f"trace {path}: {err}") from err
    rows.sort(key=lambda a: a.at)
    return rows


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


@dataclass
class PriorityReport:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "refused": self.refused,
            "completed": self.completed,
            "p50": percentile(self.latencies, 0.5),
            "p95": percentile(self.latencies, 0.95),
            "p99": percentile(self.latencies, 0.99),
            "max": max(self.latencies) if self.latencies else None,
        }


@dataclass
class LoadReport:
    duration: float = 0.0
    behind_schedule_max: float = 0.0  # how late the generator itself ever fired (s)
    errors: int = 0
    priorities: dict[Priority, PriorityReport] = field(
        default_factory=lambda: {p: PriorityReport() for p in PRIORITIES}
    )
    completions: bool = True
    """False when no NATS connection listened for completions ("done" not measured)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 3),
            "behind_schedule_max": round(self.behind_schedule_max, 4),
            "errors": self.errors,
            "completions_measured": self.completions,
            "priorities": {p.value: r.summary() for p, r in self.priorities.items()},
        }

    def render(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f}ms"

        lines = [
            f"surge load: {self.duration:.1f}s, generator lag max {ms(self.behind_schedule_max)}, "
            f"errors {self.errors}",
            f"  {'priority':<9} {'sent':>8} {'accepted':>9} {'refused':>8} {'done':>8} "
            f"{'p50':>8} {'p95':>8} {'p99':>8}",
        ]
        for priority, report in self.priorities.items():
            s = report.summary()
            done = str(s["completed"]) if self.completions else "-"
            lines.append(
                f"  {priority.value:<9} {s['sent']:>8} {s['accepted']:>9} {s['refused']:>8} "
                f"{done:>8} {ms(s['p50']):>8} {ms(s['p95']):>8} {ms(s['p99']):>8}"
            )
        if not self.completions:
            lines.append("  done/latency not measured: no NATS connection (--nats-url)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """Where to send: straight to JetStream, or through a gateway (HTTP)."""

    stream: str
    subject_prefix: str
    partitions: int
    gateway_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # tenant -> bearer token


def _payload(size: int) -> bytes:
    return json.dumps({"text": "x" * max(1, size - 12)}).encode()


async def run_load(
    nats_url: str | None,
    target: Target,
    schedule: Iterable[Arrival],
    *,
    max_outstanding: int = 20_000,
    settle: float = 10.0,
    on_progress: Callable[[LoadReport], None] | None = None,
) -> LoadReport:
    """Fire ``schedule`` open-loop; then wait up to ``settle`` s for completions.
    ``nats_url=None`` sends through the gateway only and measures no completions."""
    if nats_url is None and not target.gateway_url:
        raise ConfigError("without a NATS URL, load can only go through a gateway")
    nc = await nats.connect(nats_url, max_reconnect_attempts=-1) if nats_url else None
    report = LoadReport(completions=nc is not None)
    run = uuid.uuid4().hex[:10]
    started_wall = time.time()

    async def on_done(msg: Msg) -> None:
        try:
            priority_text, enqueued, done = msg.data.decode().split(" ")
            if not enqueued or float(enqueued) < started_wall:
                return  # not ours: enqueued before this run
            per = report.priorities[Priority(priority_text)]
        except ValueError:
            return
        per.completed += 1
        per.latencies.append(float(done) - float(enqueued))

    completions = await nc.subscribe(completion_subject(target.stream), cb=on_done) if nc else None
    sender: _GatewaySender | _NatsSender
    if target.gateway_url:
        sender = _GatewaySender(target, run)
    else:
        assert nc is not None  # checked above
        sender = _NatsSender(nc, target, run)
    outstanding: set[asyncio.Future[Any]] = set()
    start = time.monotonic()
    last_progress = start
    try:
        for index, arrival in enumerate(schedule):
            delay = start + arrival.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                report.behind_schedule_max = max(report.behind_schedule_max, -delay)
            per = report.priorities[arrival.priority]
            per.sent += 1
            if len(outstanding) >= max_outstanding:
                report.errors += 1  # the target is far behind: count, never block arrivals
                continue
            future = await sender.send(index, arrival, per, report)
            outstanding.add(future)
            future.add_done_callback(outstanding.discard)
            if on_progress is not None and time.monotonic() - last_progress > 1.0:
                last_progress = time.monotonic()
                on_progress(report)
        if outstanding:
            await asyncio.wait(list(outstanding), timeout=30)
        deadline = time.monotonic() + (settle if nc else 0.0)
        while time.monotonic() < deadline:
            accepted = sum(p.accepted for p in report.priorities.values())
            if sum(p.completed for p in report.priorities.values()) >= accepted:
                break
            await asyncio.sleep(0.1)
    finally:
        report.duration = time.monotonic() - start
        await sender.close()
        if completions is not None:
            await completions.unsubscribe()
        if nc is not None:
            await nc.close()
    return report


class _NatsSender:
    def __init__(self, nc: Client, target: Target, run: str) -> None:
        self.js = nc.jetstream()
        self.target = target
        self.run = run
        self.payloads: dict[int, bytes] = {}

    async def send(
        self, index: int, arrival: Arrival, per: PriorityReport, report: LoadReport
    ) -> asyncio.Future[Any]:
        payload = self.payloads.get(arrival.size)
        if payload is None:
            payload = self.payloads[arrival.size] = _payload(arrival.size)
        headers = message_headers(
            tenant=arrival.tenant,
            msg_id=f"{self.run}-{index}",
            conversation_id=arrival.conversation_id,
            priority=arrival.priority,
            enqueued_at=format_enqueued_at(time.time()),
        )
        subject = message_subject(
            self.target.subject_prefix,
            arrival.priority,
            arrival.conversation_id,
            self.target.partitions,
            tenant=arrival.tenant,
        )
        future = await self.js.publish_async(subject, payload, headers=headers)

        def settled(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                report.errors += 1
            else:
                per.accepted += 1

        future.add_done_callback(settled)
        return future

    async def close(self) -> None:
        return None


class _GatewaySender:
    def __init__(self, target: Target, run: str) -> None:
        import aiohttp

        self.target = target
        self.run = run
        self.session = aiohttp.ClientSession()

    async def send(
        self, index: int, arrival: Arrival, per: PriorityReport, report: LoadReport
    ) -> asyncio.Future[Any]:
        body = {
            "id": f"{self.run}-{index}",
            "conversation_id": arrival.conversation_id,
            "tenant": arrival.tenant,
            "priority": arrival.priority.value,
            "text": "x" * max(1, arrival.size - 12),
        }
        token = self.target.tokens.get(arrival.tenant, "")
        url = f"{self.target.gateway_url}/v1/messages"

        async def post() -> None:
            import aiohttp

            try:
                async with self.session.post(
                    url, json=body, headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    await resp.read()
                    if resp.status == 202:
                        per.accepted += 1
                    elif resp.status in (429, 503):
                        per.refused += 1
                    else:
                        report.errors += 1
            # ClientError too: a dropped connection (ServerDisconnectedError, which is not
            # an OSError) is an error to count, not an exception no task ever retrieves.
            except (TimeoutError, OSError, aiohttp.ClientError):
                report.errors += 1

        return asyncio.ensure_future(post())

    async def close(self) -> None:
        await self.session.close()
