"""Read one conversation's replies in order, from any stream sequence on (the SSE feed).

An ordered consumer (ephemeral, flow-controlled, recreated by nats-py from the last
sequence it delivered whenever it detects a gap) on the conversation's reply subject,
starting right after the sequence the client last saw. Stream sequences only grow, so
"after ``Last-Event-ID``" can neither skip a reply nor repeat one, across gateway
restarts and replicas alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from surge_workers.replies import Reply


@dataclass(frozen=True)
class ReplyEvent:
    seq: int
    reply: Reply | None  # None: a stored message that is not a reply document (skipped)
    pending: int  # replies after this one already stored when it was delivered


def _start(after_seq: int) -> ConsumerConfig:
    if after_seq <= 0:
        return ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    return ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
    )


@contextlib.asynccontextmanager
async def reply_feed(
    js: Any, stream: str, subject: str, after_seq: int = 0, *, heartbeat: float = 5.0
) -> AsyncIterator[ReplyFeedReader]:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        idle_heartbeat=heartbeat,
        config=_start(after_seq),
        cb=queue.put,
    )
    try:
        info = await sub.consumer_info()
        delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
        yield ReplyFeedReader(queue, initial=int(info.num_pending or 0) + delivered)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


class ReplyFeedReader:
    def __init__(self, queue: asyncio.Queue[Any], initial: int) -> None:
        self._queue = queue
        #: Replies stored at subscription time and not yet read (for one-shot reads).
        self.backlog = initial

    async def next(self, wait: float | None = None) -> ReplyEvent | None:
        """The next reply, or None when none arrived within ``wait`` seconds."""
        try:
            msg = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None
        meta = msg.metadata
        try:
            reply: Reply | None = Reply.decode(msg.data)
        except ValueError:
            reply = None
        self.backlog = int(meta.num_pending)
        return ReplyEvent(seq=int(meta.sequence.stream), reply=reply, pending=int(meta.num_pending))

    async def stored(self, wait: float = 5.0) -> list[ReplyEvent]:
        """Everything stored when the feed opened (and whatever else came meanwhile)."""
        events: list[ReplyEvent] = []
        while self.backlog > 0 or not self._queue.empty():
            event = await self.next(wait)
            if event is None:
                break
            events.append(event)
        return events
