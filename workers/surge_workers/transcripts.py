"""Conversation transcripts in a JetStream KV bucket: one key per message.

``t.<tenant>.<conversation>.<message id>`` (each a key token, see
:func:`~surge_workers.contract.scoped_id`) is created with "create only if absent", so
storing is idempotent on the message id within its tenant: a redelivered message (after
a crash, a lost ack or a failover) finds its key and has no second effect. The transcript
is ordered by the stream sequence the message got at ingest — the per-conversation order
defined by the partitioned subject — so a message retried after a later one still sits
in its place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from surge_workers.contract import transcript_filter, transcript_key, transcripts_bucket


@dataclass(frozen=True)
class TranscriptEntry:
    msg_id: str
    seq: int
    conversation_id: str
    tenant: str
    priority: str
    team: str
    text: str
    language: str | None
    enqueued_at: float | None
    stored_at: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> TranscriptEntry:
        doc: dict[str, Any] = json.loads(raw)
        return cls(**doc)


async def store_entry(kv: KeyValue, entry: TranscriptEntry, *, ttl: float | None = None) -> bool:
    """Store once, for ``ttl`` seconds (a per-message TTL: the key is gone afterwards and a
    redelivery that late would store it again); False when this message id was already
    stored (a duplicate)."""
    key = transcript_key(entry.tenant, entry.conversation_id, entry.msg_id)
    try:
        await kv.create(key, entry.encode(), msg_ttl=ttl)
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    return True


async def read_transcript(
    js: JetStreamContext, stream: str, tenant: str, conversation_id: str, *, wait: float = 5.0
) -> list[TranscriptEntry]:
    """All stored messages of a tenant's conversation, in stream-sequence order."""
    try:
        kv = await js.key_value(transcripts_bucket(stream))
    except nats.js.errors.BucketNotFoundError:
        return []
    watcher = await kv.watch(transcript_filter(tenant, conversation_id), ignore_deletes=True)
    entries: list[TranscriptEntry] = []
    try:
        while True:
            try:
                update = await watcher.updates(timeout=wait)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                break
            if update is None:  # end of the initial values
                break
            if update.value:
                entries.append(TranscriptEntry.decode(update.value))
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    entries.sort(key=lambda e: e.seq)
    return entries
