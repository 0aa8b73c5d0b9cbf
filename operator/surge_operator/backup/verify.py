"""Count what a cluster holds, by message id: used by the restore tests and the benchmark.

Reads whole streams with a throwaway ordered consumer (no ack state touched), so it is for
checking, not for serving traffic.
"""

from __future__ import annotations

from collections import Counter

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from surge_workers.contract import Header, scoped_id, transcripts_bucket
from surge_workers.transcripts import TranscriptEntry


async def _read_all(
    js: JetStreamContext, stream: str, subject: str
) -> list[tuple[dict[str, str], bytes]]:
    info = await js.stream_info(stream)
    total = info.state.messages
    out: list[tuple[dict[str, str], bytes]] = []
    if not total:
        return out
    sub = await js.subscribe(
        subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while len(out) < total:
            msg = await sub.next_msg(timeout=10)
            out.append((dict(msg.headers or {}), msg.data))
            if msg.metadata.sequence.stream >= info.state.last_seq:
                break
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return out


async def message_ids(js: JetStreamContext, stream: str, subject_prefix: str) -> Counter[str]:
    """How many copies of each (tenant-scoped) message id the message stream holds."""
    found = await _read_all(js, stream, f"{subject_prefix}.>")
    return Counter(h.get(Header.MSG_ID, "") for h, _ in found)


async def transcripts(js: JetStreamContext, stream: str) -> list[TranscriptEntry]:
    bucket = transcripts_bucket(stream)
    found = await _read_all(js, f"KV_{bucket}", f"$KV.{bucket}.>")
    return [TranscriptEntry.decode(data) for _, data in found if data]


async def transcript_ids(js: JetStreamContext, stream: str) -> Counter[str]:
    """Transcript entries per tenant-scoped message id. Entries are created once per key
    (never updated), so a count above 1 would be a double effect."""
    return Counter(scoped_id(e.tenant, e.msg_id) for e in await transcripts(js, stream))
