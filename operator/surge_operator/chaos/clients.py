"""At-least-once HTTP clients of the real gateway.

One task per conversation sends that conversation's messages in order, each with a unique
id, and retries a message with the *same id* (on the next gateway, after `Retry-After`,
at most 1 s) until a 202 says it was stored: that is "accepted". A later message of the
conversation is sent only after the earlier one was accepted, so the client's order is
the conversation's order. Arrivals are paced to `rate` messages/s over all conversations.
Every answer that is not a 202 is counted by status (e.g. 503 while NATS is away, 507
when the stream is full); connection errors count as status 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from surge_operator.chaos.handler import POISON
from surge_operator.chaos.stage import TOKEN


@dataclass
class Sent:
    msg_id: str
    conversation: str
    position: int
    poison: bool
    first_sent: float  # wall clock, seconds
    accepted_at: float | None = None
    attempts: int = 0


@dataclass
class Traffic:
    """What the clients did: every message sent, and every answer that was not a 202."""

    sent: dict[str, Sent] = field(default_factory=dict)
    refusals: Counter[int] = field(default_factory=Counter)
    #: 202s that said `duplicate: true`: a retry of a message already stored (absorbed).
    duplicates: int = 0
    first_refusal_at: float | None = None

    def accepted(self) -> set[str]:
        return {s.msg_id for s in self.sent.values() if s.accepted_at is not None}

    def first_accept_after(self, at: float) -> float | None:
        after = [s.accepted_at for s in self.sent.values() if s.accepted_at and s.accepted_at > at]
        return min(after, default=None)


def _is_poison(index: int, poison_every: int) -> bool:
    return poison_every > 0 and index % poison_every == poison_every // 2


async def send_traffic(
    gateways: Callable[[], list[str]],
    *,
    count: int,
    rate: float,
    conversations: int = 20,
    poison_every: int = 0,
    give_up_after: float = 90.0,
    before_send: Callable[[int], Awaitable[None]] | None = None,
    schedule: Sequence[float] | None = None,
    tag: str = "m",
    traffic: Traffic | None = None,
) -> Traffic:
    """Send ids `<tag><i>` for i < count; message i belongs to conversation i % conversations
    and is sent no earlier than `schedule[i]` (default i / rate) seconds after the start.
    `before_send(i)` runs just before message i's first attempt (faults go there)."""
    due = list(schedule) if schedule is not None else [i / rate for i in range(count)]
    traffic = Traffic() if traffic is None else traffic
    start = time.monotonic()
    turn = 0

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal turn
        conversation = f"c{index % conversations}"
        sent = Sent(
            msg_id=f"{tag}{index}",
            conversation=conversation,
            position=index // conversations,
            poison=_is_poison(index, poison_every),
            first_sent=time.time(),
        )
        traffic.sent[sent.msg_id] = sent
        text = f"{POISON} {index}" if sent.poison else f"pos={sent.position} message {index}"
        body = {"id": sent.msg_id, "conversation_id": conversation, "text": text}
        body["priority"] = "critical"
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            urls = gateways()
            if not urls:
                await asyncio.sleep(0.1)
                continue
            turn += 1
            url = urls[turn % len(urls)]
            sent.attempts += 1
            retry_after = 0.1
            try:
                async with session.post(
                    f"{url}/v1/messages",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    if response.status == 202:
                        answer = await response.json()
                        sent.accepted_at = time.time()
                        traffic.duplicates += bool(answer.get("duplicate"))
                        return
                    status = response.status
                    retry_after = min(1.0, float(response.headers.get("Retry-After", "0.1")))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                status = 0
            traffic.refusals[status] += 1
            if traffic.first_refusal_at is None:
                traffic.first_refusal_at = time.time()
            await asyncio.sleep(retry_after)

    async def conversation_loop(session: aiohttp.ClientSession, first: int) -> None:
        for index in range(first, count, conversations):
            delay = start + due[index] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if before_send is not None:
                await before_send(index)
            await one(session, index)

    connector = aiohttp.TCPConnector(limit=conversations * 2, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(conversation_loop(session, c) for c in range(conversations)))
    return traffic


def surge_schedule(count: int, rate: float, factor: float) -> list[float]:
    """Send offsets: the middle third of the messages arrives `factor` times faster."""
    offsets, at = [], 0.0
    for i in range(count):
        offsets.append(at)
        at += 1 / (rate * factor if count // 3 <= i < 2 * count // 3 else rate)
    return offsets
