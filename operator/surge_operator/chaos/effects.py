"""What the workers did, read back from NATS after a run.

The effect of processing a message is its transcript entry: the default handler creates
the key ``t.<tenant>.<conversation>.<id>`` once. The transcripts bucket keeps 5 revisions
per key, so its underlying stream holds every write that ever took effect, in the order
they happened: a message stored twice would show as two writes of one key. Dead letters
are read from the dead-letter stream (`surge dlq list`'s reader).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from surge_operator.chaos.checker import Effect
from surge_workers.contract import transcripts_bucket
from surge_workers.dlq import DeadLetter, list_dead_letters
from surge_workers.transcripts import TranscriptEntry


@dataclass(frozen=True)
class Stored:
    effect: Effect
    at: float  # wall clock of the write, seconds
    seq: int  # the message's sequence in the pipeline stream (its place in the transcript)


def _position(entry: TranscriptEntry) -> int:
    head = entry.text.split(" ", 1)[0]
    return int(head.removeprefix("pos=")) if head.startswith("pos=") else -1


class ReplicaBehindError(Exception):
    """The read's consumer ran out of messages before the sequence the stream's leader
    reported: it was placed on a replica still catching up (a server that just woke from
    SIGSTOP), which serves what it has and calls that everything."""


#: Errors of a cluster still settling after a fault (a leader being elected, a server
#: catching up): the checker's own reads retry through them instead of reporting a loss.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    ReplicaBehindError,
)
T = TypeVar("T")


async def _retrying(read: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """Run a whole read again (from scratch) while the cluster answers transiently."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await read()
        except _TRANSIENT:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def read_effects(js: JetStreamContext, stream: str) -> list[Stored]:
    """Every transcript write, in the order the stream took them."""
    return await _retrying(lambda: _read_effects(js, stream))


async def _read_effects(js: JetStreamContext, stream: str) -> list[Stored]:
    bucket = transcripts_bucket(stream)
    kv_stream = f"KV_{bucket}"
    name = f"chaos{uuid.uuid4().hex[:8]}"
    # The stream leader answers stream info: the last sequence every write is known by.
    last_seq = (await js.stream_info(kv_stream)).state.last_seq
    seen = 0
    config = ConsumerConfig(
        name=name,
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=f"$KV.{bucket}.t.>",
        inactive_threshold=30.0,
    )
    sub = await js.pull_subscribe_bind(
        (await js.add_consumer(kv_stream, config)).name, stream=kv_stream
    )
    out: list[Stored] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except nats.errors.TimeoutError:
                # Done only when the consumer says nothing is left: a fetch that timed out
                # in a slow cluster must not cut the read short (the rest would count lost).
                if (await js.consumer_info(kv_stream, name)).num_pending == 0:
                    break
                continue
            for msg in batch:
                seen = max(seen, msg.metadata.sequence.stream)
                if not msg.data:
                    continue  # a delete or purge marker, not a write
                entry = TranscriptEntry.decode(msg.data)
                out.append(
                    Stored(
                        Effect(entry.msg_id, entry.conversation_id, _position(entry)),
                        msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else 0.0,
                        entry.seq,
                    )
                )
            if batch and batch[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(kv_stream, name)
    if seen < last_seq:
        raise ReplicaBehindError(f"{kv_stream}: read up to {seen}, the leader has {last_seq}")
    return out


async def dead_lettered(js: JetStreamContext, stream: str, prefix: str) -> list[DeadLetter]:
    """The dead letters, oldest first (a repeat would show twice)."""

    async def read() -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        after = 0
        while True:
            page = await list_dead_letters(js, stream, prefix, after=after, limit=500)
            if not page:
                return letters
            letters.extend(page)
            after = page[-1].seq

    return await _retrying(read)


def transcript_order_violations(stored: Sequence[Stored]) -> int:
    """Messages that sit before an earlier one of their conversation in the transcript (read
    in stream-sequence order, as the gateway serves it): the order customers see."""
    by_conversation: dict[str, list[Stored]] = {}
    for s in stored:
        by_conversation.setdefault(s.effect.conversation, []).append(s)
    violations = 0
    for entries in by_conversation.values():
        newest = -1
        for s in sorted(entries, key=lambda e: e.seq):
            violations += s.effect.position < newest
            newest = max(newest, s.effect.position)
    return violations
