"""Open-loop traffic for the demo: arrivals follow the schedule, never the responses.

Publishes straight to JetStream with the contract's subjects and headers (message id for
de-duplication, conversation, tenant, priority, enqueue time), paced in 50 ms slots.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from nats.js import JetStreamContext

from surge_workers.contract import (
    Header,
    Priority,
    format_enqueued_at,
    message_subject,
)

log = structlog.get_logger("surge.demo.load")

_SLOT_S = 0.05


@dataclass(frozen=True, slots=True)
class SurgeShape:
    """Base rate, then `factor` x base from `surge_at_s` to `surge_end_s`, then base."""

    base_rate: float
    factor: float
    surge_at_s: float
    surge_end_s: float
    duration_s: float
    mix: Mapping[Priority, float] = field(
        default_factory=lambda: {Priority.CRITICAL: 0.2, Priority.NORMAL: 0.6, Priority.BULK: 0.2}
    )

    def rate(self, t: float) -> float:
        if self.surge_at_s <= t < self.surge_end_s:
            return self.base_rate * self.factor
        return self.base_rate


@dataclass
class LoadGenerator:
    js: JetStreamContext
    prefix: str
    partitions: int
    shape: SurgeShape
    seed: int = 1
    conversations: int = 500
    sent: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    failed: int = 0
    started_at: float | None = None

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def offered_rate(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return self.shape.rate(now - self.started_at)

    async def run(self) -> None:
        rng = random.Random(self.seed)
        run_id = uuid.uuid4().hex[:8]
        self.started_at = time.monotonic()
        carry = 0.0
        slot = 0
        pending: set[asyncio.Task[None]] = set()
        while True:
            t = slot * _SLOT_S
            if t >= self.shape.duration_s:
                break
            due = self.started_at + t
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            carry += self.shape.rate(t) * _SLOT_S
            count, carry = int(carry), carry - int(carry)
            for _ in range(count):
                priority = rng.choices(list(self.shape.mix), weights=list(self.shape.mix.values()))[
                    0
                ]
                conversation = f"conv-{rng.randrange(self.conversations)}"
                msg_id = f"{run_id}-{slot}-{rng.getrandbits(48):x}"
                task = asyncio.create_task(self._publish(priority, conversation, msg_id))
                pending.add(task)
                task.add_done_callback(pending.discard)
            slot += 1
        if pending:
            await asyncio.gather(*pending)

    async def _publish(self, priority: Priority, conversation: str, msg_id: str) -> None:
        headers = {
            Header.MSG_ID: msg_id,
            Header.CONVERSATION: conversation,
            Header.TENANT: "demo",
            Header.PRIORITY: priority.value,
            Header.ENQUEUED_AT: format_enqueued_at(time.time()),
        }
        subject = message_subject(self.prefix, priority, conversation, self.partitions)
        body = f'{{"text": "help with order {msg_id}", "language": "en"}}'.encode()
        for attempt in range(5):
            try:
                await self.js.publish(subject, body, headers=headers, timeout=5)
            except Exception as err:
                log.warning("publish_failed", attempt=attempt, error=str(err))
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.sent[priority] += 1
            return
        self.failed += 1
