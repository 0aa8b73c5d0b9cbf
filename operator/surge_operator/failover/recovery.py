"""Recover an old primary's tail: what it stored after the fork that the active region
lacks, merged into the active region by identity, with no cap.

The *fork* is the last sequence both copies share. `promote` stamps it into each promoted
stream's metadata (`META_FORK_SEQ`, with the epoch): a mirror keeps its origin's sequence
numbers, so sequences up to the fork hold the same messages in both regions, and the
tail is exactly the old copy's messages after it. (Without the stamp, fork = 0: the whole
old stream is compared, which is slower but merges the same way.)

Merging never doubles and never regresses:
    * Message streams: a tail message whose ``Nats-Msg-Id`` the active region already
      holds after the fork is a duplicate (a client retried it there, or a partitioned old
      primary took a copy) and is skipped; the rest are re-published with their headers,
      in stream order, so per-conversation order holds and JetStream's duplicate window
      drops any race.
    * KV streams: a tail entry whose key the active region wrote after the fork is
      *superseded*: the active region's value is newer (a later epoch) and stays.

Both copies are read in pages through ephemeral pull consumers (`page` messages per
request), so a tail of any length costs memory for the active region's post-fork ids
only. The result counts every tail message (republished, duplicates, superseded); the
caller deletes the old stream only when `complete` (all of them accounted for).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamInfo

from surge_workers.contract import Header

#: Stream metadata stamped by `promote`: the last sequence shared with the old origin.
META_FORK_SEQ = "surge.dev/fork-seq"
#: Stream metadata stamped by `promote`: the failover epoch the stream became writable in.
META_EPOCH = "surge.dev/epoch"
#: Stream metadata stamped by `promote`: the Lease fencing token of the leader that did it.
META_LEADER_TOKEN = "surge.dev/leader-token"
#: Messages per page when reading a tail or the active region's post-fork writes.
PAGE = 256


@dataclass(frozen=True, slots=True)
class TailRecovery:
    stream: str
    fork_seq: int = 0
    #: Messages the old copy holds after the fork.
    examined: int = 0
    republished: int = 0
    #: Already in the active region by message id: merged, not doubled.
    duplicates: int = 0
    #: KV keys the active region rewrote after the fork: its newer value stays.
    superseded: int = 0

    @property
    def complete(self) -> bool:
        return self.examined == self.republished + self.duplicates + self.superseded


def fork_of(info: StreamInfo) -> int:
    """The fork sequence `promote` stamped on the active region's stream (0: unknown)."""
    raw = (info.config.metadata or {}).get(META_FORK_SEQ, "")
    return int(raw) if raw.isdigit() else 0


async def pages(
    js: JetStreamContext, stream: str, start_seq: int, last_seq: int, *, page: int = PAGE
) -> AsyncIterator[list[Msg]]:
    """Messages of `stream` from `start_seq` to `last_seq` (inclusive), `page` at a time,
    through an ephemeral no-ack pull consumer (deleted when done or abandoned)."""
    if last_seq < start_seq:
        return
    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_seq),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            max_ack_pending=-1,
        ),
    )
    sub = await js.pull_subscribe_bind(info.name, stream=stream)
    try:
        seen = start_seq - 1
        while seen < last_seq:
            try:
                batch = await sub.fetch(page, timeout=2.0)
            except nats.errors.TimeoutError:
                return  # the rest were deleted (limits) or expired: nothing more to read
            batch = [m for m in batch if m.metadata.sequence.stream <= last_seq]
            if not batch:
                return
            seen = batch[-1].metadata.sequence.stream
            yield batch
    finally:
        await sub.unsubscribe()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await js.delete_consumer(stream, info.name)  # else inactive_threshold does


async def recover_tail(
    old: JetStreamContext,
    active: JetStreamContext,
    stream: str,
    *,
    kv: bool | None = None,
    page: int | None = None,
    on_page: Callable[[TailRecovery], None] | None = None,
) -> TailRecovery:
    """Merge `old`'s tail of `stream` into `active`'s (see the module docstring)."""
    kv = stream.startswith("KV_") if kv is None else kv
    page = page or PAGE
    old_info = await old.stream_info(stream)
    active_info = await active.stream_info(stream)
    fork = fork_of(active_info)
    result = TailRecovery(stream=stream, fork_seq=fork)
    if old_info.state.messages == 0 or old_info.state.last_seq <= fork:
        return result
    newer: set[str] = set()  # ids (messages) or subjects (KV) written in active after fork
    async for batch in pages(active, stream, fork + 1, active_info.state.last_seq, page=page):
        for msg in batch:
            newer.add(msg.subject if kv else (msg.headers or {}).get(Header.MSG_ID, ""))
    newer.discard("")
    examined = republished = duplicates = superseded = 0
    async for batch in pages(old, stream, fork + 1, old_info.state.last_seq, page=page):
        for msg in batch:
            examined += 1
            headers = {
                k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-Expected")
            }
            key = msg.subject if kv else headers.get(Header.MSG_ID, "")
            if key and key in newer:
                if kv:
                    superseded += 1
                else:
                    duplicates += 1
                continue
            ack = await active.publish(msg.subject, msg.data or b"", headers=headers or None)
            if ack.duplicate:
                duplicates += 1
            else:
                republished += 1
            if key and not kv:
                newer.add(key)  # an id twice in the tail itself is merged once
        result = TailRecovery(stream, fork, examined, republished, duplicates, superseded)
        if on_page is not None:
            on_page(result)
    return result


def epoch_of(info: StreamInfo | None) -> int | None:
    """The epoch stamped on a stream by the promotion that made it writable (None: none)."""
    raw = ((info.config.metadata or {}) if info is not None else {}).get(META_EPOCH, "")
    return int(raw) if raw.isdigit() else None


def token_of(info: StreamInfo | None) -> int:
    """The leader token stamped on a stream by the promotion that made it writable."""
    raw = ((info.config.metadata or {}) if info is not None else {}).get(META_LEADER_TOKEN, "")
    return int(raw) if raw.isdigit() else 0
