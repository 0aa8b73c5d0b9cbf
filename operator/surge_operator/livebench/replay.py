"""Replay per-second arrival counts through a real gateway, open loop, and record what
happened to every message (accepted, refused and retried, started by a worker).

Each second's messages of a priority are sent as `slots` evenly spaced batch POSTs
(`/v1/messages/batch`), so one refusal (429 when the level throttles or sheds that
priority) concerns one priority. A refused batch is retried after the gateway's
Retry-After with the same message ids, as the simulator's clients do, until accepted or
`give_up_s` after its first attempt.

Started messages come from the workers' completion announcements (SURGE_COMPLETIONS):
`done - enqueued - handling` is the queue wait, `done - handling` when the handler
started; `handling` is the mean handling time the workers exported to Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
from nats.aio.msg import Msg

from surge_operator.api import Priority
from surge_operator.livebench.measure import PriorityLog
from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.simulate.traffic import Arrivals
from surge_workers.contract import completion_subject

TENANT = "live"
CONVERSATIONS = 2000


@dataclass
class ReplayLog:
    """Everything recorded, on the replay's clock (seconds since its start)."""

    priorities: dict[Priority, PriorityLog] = field(
        default_factory=lambda: {p: PriorityLog() for p in PRIORITY_ORDER}
    )
    #: (done at, enqueued at) per priority, wall clock; turned into waits afterwards.
    done: dict[Priority, list[tuple[float, float]]] = field(
        default_factory=lambda: {p: [] for p in PRIORITY_ORDER}
    )
    offered: int = 0
    refusals: int = 0
    errors: int = 0
    gave_up: int = 0
    #: Seconds the sender fell behind the schedule at worst.
    behind_s: float = 0.0
    #: Unix time of the replay's second 0.
    wall_start: float = 0.0

    def finish(self, handling_s: float) -> None:
        """Turn completions into (started at, wait) on the replay's clock."""
        for p, rows in self.done.items():
            self.priorities[p].started = sorted(
                (done - self.wall_start - handling_s, max(0.0, done - enqueued - handling_s))
                for done, enqueued in rows
            )


@dataclass
class Replayer:
    gateway_url: str
    token: str
    nats_url: str
    stream: str
    slots: int = 4
    give_up_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    log: ReplayLog = field(default_factory=ReplayLog)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Tasks waiting out a Retry-After (cancelled when the trace ends).
    _retrying: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, arrivals: Arrivals) -> ReplayLog:
        """Send `arrivals` in real time; returns once the last second is sent (retries
        still pending are cancelled and count as still retrying)."""
        run = uuid.uuid4().hex[:8]
        nc = await nats.connect(self.nats_url, name="surge-live-replay")
        self.log.wall_start = time.time()
        self._start = self.clock()

        async def on_done(msg: Msg) -> None:
            try:
                priority, enqueued, done = msg.data.decode().split(" ")
                row = (float(done), float(enqueued))
                self.log.done[Priority(priority)].append(row)
            except ValueError:
                return

        sub = await nc.subscribe(completion_subject(self.stream), cb=on_done)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as session:
                for second, counts in enumerate(arrivals.counts):
                    for slot in range(self.slots):
                        due = self._start + second + slot / self.slots
                        delay = due - self.clock()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        else:
                            self.log.behind_s = max(self.log.behind_s, -delay)
                        for p in PRIORITY_ORDER:
                            n = _share(counts.get(p, 0), slot, self.slots)
                            if n:
                                ids = [f"{run}-{next(self._ids)}" for _ in range(n)]
                                self._spawn(session, p, ids, self._now())
                # The run ends with the trace: whatever waits to retry stays unserved; the
                # last requests in flight get their answer (bounded).
                for task in list(self._retrying):
                    task.cancel()
                if self._tasks:
                    await asyncio.wait(list(self._tasks), timeout=10)
                for task in list(self._tasks):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await sub.unsubscribe()
            await nc.close()
        return self.log

    def _now(self) -> float:
        return self.clock() - self._start

    def _spawn(
        self, session: aiohttp.ClientSession, p: Priority, ids: list[str], first: float
    ) -> None:
        self.log.offered += len(ids)
        task = asyncio.create_task(self._send(session, p, ids, first))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, session: aiohttp.ClientSession, p: Priority, ids: list[str], first: float
    ) -> None:
        body = {"messages": [_message(i, p) for i in ids]}
        refused_at: float | None = None
        plog = self.log.priorities[p]
        try:
            while True:
                status, retry_after = await self._post(session, body)
                now = self._now()
                if status == 202:
                    plog.accepted.extend([now] * len(ids))
                    if refused_at is not None:
                        plog.retrying.extend([(first, refused_at, now)] * len(ids))
                    return
                if status not in (429, 503, 507):
                    self.log.errors += len(ids)
                    return
                self.log.refusals += len(ids)
                refused_at = now if refused_at is None else refused_at
                if now + retry_after - first > self.give_up_s:
                    self.log.gave_up += len(ids)
                    plog.retrying.extend([(first, refused_at, float("inf"))] * len(ids))
                    return
                me = asyncio.current_task()
                assert me is not None
                self._retrying.add(me)
                try:
                    await asyncio.sleep(retry_after)
                finally:
                    self._retrying.discard(me)
        except asyncio.CancelledError:
            if refused_at is not None:
                plog.retrying.extend([(first, refused_at, float("inf"))] * len(ids))
            else:
                self.log.errors += len(ids)
            raise

    async def _post(
        self, session: aiohttp.ClientSession, body: dict[str, Any]
    ) -> tuple[int, float]:
        try:
            async with session.post(f"{self.gateway_url}/v1/messages/batch", json=body) as resp:
                await resp.read()
                retry = float(resp.headers.get("Retry-After", "1") or 1)
                return resp.status, retry
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 503, 1.0


def _share(count: int, slot: int, slots: int) -> int:
    """Slot `slot`'s part of `count` messages spread over `slots` slots (sums to count)."""
    return (count * (slot + 1)) // slots - (count * slot) // slots


def _message(msg_id: str, p: Priority) -> dict[str, str]:
    n = int(msg_id.rsplit("-", 1)[1])
    # Few hot conversations and a long tail, like `surge load`.
    conversation = (n * 7919) % CONVERSATIONS
    return {
        "id": msg_id,
        "conversation_id": f"c{conversation}",
        "tenant": TENANT,
        "priority": p.value,
        "text": "live bench",
    }
