"""What the workers did, read back from NATS after a run.

The effect of processing a message is its transcript entry: the default handler creates
the key ``t.<tenant>.<conversation>.<id>`` once. The transcripts bucket keeps 5 revisions
per key, so its underlying stream holds every write that ever took effect, in the order
they happened: a message stored twice would show as two writes of one key. Dead letters
are read from the dead-letter stream (`surge dlq list`'s reader).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from surge_operator.chaos.checker import Effect
from surge_workers.contract import transcripts_bucket
from surge_workers.dlq import list_dead_letters
from surge_workers.transcripts import TranscriptEntry


@dataclass(frozen=True)
class Stored:
    effect: Effect
    at: float  # wall clock of the write, seconds
    seq: int  # the message's sequence in the pipeline stream (its place in the transcript)


def _position(entry: TranscriptEntry) -> int:
    head = entry.text.split(" ", 1)[0]
    return int(head.removeprefix("pos=")) if head.startswith("pos=") else -1


async def read_effects(js: JetStreamContext, stream: str) -> list[Stored]:
    """Every transcript write, in the order the stream took them."""
    bucket = transcripts_bucket(stream)
    kv_stream = f"KV_{bucket}"
    name = f"chaos{uuid.uuid4().hex[:8]}"
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
                break
            for msg in batch:
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
        await sub.unsubscribe()
        await js.delete_consumer(kv_stream, name)
    return out


async def dead_lettered(js: JetStreamContext, stream: str, prefix: str) -> list[str]:
    """Client ids of the dead letters, oldest first (a repeat would show twice)."""
    ids: list[str] = []
    after = 0
    while True:
        page = await list_dead_letters(js, stream, prefix, after=after, limit=500)
        if not page:
            return ids
        ids.extend(letter.msg_id for letter in page)
        after = page[-1].seq


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
