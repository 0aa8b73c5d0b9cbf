"""Were the acknowledgements honest? Predicted against actual wait, per acknowledged message.

After a run, every reply in the replies stream is read back. Each acknowledgement names
the message it answered and the wait it promised; the transcript store holds when that
message was enqueued and when it was stored (handled). The relative error
|predicted - actual| / actual is summarised per priority (median, p90) and overall
(``eta_error_median``); acknowledgements that promised no time (no forecast yet) are
counted apart, never dropped silently. Pure summarising (:func:`summarise`) is separate
from the reading (:func:`measure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from surge_workers import contract
from surge_workers.replies import Reply, ReplyKind, replies_stream
from surge_workers.transcripts import TranscriptEntry

#: The issue's goal for eta_error_median (a goal to report against, never to tune to).
GOAL_MEDIAN = 0.3


@dataclass(frozen=True)
class Sample:
    priority: str
    predicted: float
    actual: float
    msg_id: str
    position: int | None = None
    #: Unix seconds the message was enqueued, and the level its acknowledgement saw (kept
    #: so a recorded run can be re-judged against another model, :mod:`.record`).
    enqueued_at: float | None = None
    level: int = 0

    @property
    def error(self) -> float:
        return abs(self.predicted - self.actual) / self.actual


@dataclass
class Honesty:
    replies_sent: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    conversations: int = 0
    samples: list[Sample] = field(default_factory=list)
    #: Acknowledgements without a promised time, and acks whose message was not stored.
    no_prediction: int = 0
    unmatched: int = 0
    #: ``no_prediction`` per priority: besides a missing forecast, a class served after
    #: others is promised nothing while those arrive faster than the pool serves.
    no_prediction_by_priority: dict[str, int] = field(default_factory=dict)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def summarise(samples: list[Sample]) -> dict[str, dict[str, float | int | None]]:
    """Per priority (and ``all``): count, median and p90 of the relative error."""
    groups: dict[str, list[float]] = {}
    for sample in samples:
        groups.setdefault(sample.priority, []).append(sample.error)
        groups.setdefault("all", []).append(sample.error)
    return {
        name: {
            "n": len(errors),
            "median": _round(quantile(errors, 0.5)),
            "p90": _round(quantile(errors, 0.9)),
        }
        for name, errors in sorted(groups.items())
    }


def worst(samples: list[Sample], count: int = 5) -> list[Sample]:
    return sorted(samples, key=lambda s: s.error, reverse=True)[:count]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _replies(js: JetStreamContext, stream: str) -> list[Reply]:
    name = replies_stream(stream)
    info = await js.stream_info(name)
    total = int(info.state.messages)
    if not total:
        return []
    sub = await js.pull_subscribe(
        "",
        stream=name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    out: list[Reply] = []
    try:
        while len(out) < total:
            try:
                msgs = await sub.fetch(min(500, total - len(out)), timeout=2)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                try:
                    out.append(Reply.decode(msg.data))
                except ValueError:
                    continue
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return out


async def _conversations(js: JetStreamContext, stream: str) -> int:
    """Distinct (tenant, conversation) pairs with at least one stored message."""
    bucket = contract.transcripts_bucket(stream)
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=">")
    seen = set()
    for subject in info.state.subjects or {}:
        # $KV.<bucket>.t.<tenant>.<conversation>.<msg>
        parts = subject.split(".")
        if len(parts) >= 6:
            seen.add((parts[3], parts[4]))
    return len(seen)


async def measure(js: JetStreamContext, stream: str) -> Honesty:
    honesty = Honesty()
    replies = await _replies(js, stream)
    honesty.replies_sent = sum(r.kind in (ReplyKind.ACK, ReplyKind.NOTICE) for r in replies)
    for reply in replies:
        honesty.by_kind[reply.kind.value] = honesty.by_kind.get(reply.kind.value, 0) + 1
    honesty.conversations = await _conversations(js, stream)
    kv = await js.key_value(contract.transcripts_bucket(stream))
    for reply in replies:
        if reply.kind is not ReplyKind.ACK:
            continue
        if reply.expected_wait_s is None:
            honesty.no_prediction += 1
            name = reply.priority or "normal"
            honesty.no_prediction_by_priority[name] = (
                honesty.no_prediction_by_priority.get(name, 0) + 1
            )
            continue
        key = contract.transcript_key(reply.tenant, reply.conversation_id, reply.in_reply_to)
        try:
            entry = TranscriptEntry.decode((await kv.get(key)).value or b"")
        except (nats.js.errors.KeyNotFoundError, ValueError, TypeError):
            honesty.unmatched += 1
            continue
        enqueued = entry.enqueued_at if entry.enqueued_at is not None else reply.enqueued_at
        if enqueued is None or entry.stored_at <= enqueued:
            honesty.unmatched += 1
            continue
        honesty.samples.append(
            Sample(
                priority=reply.priority or "normal",
                predicted=reply.expected_wait_s,
                actual=entry.stored_at - enqueued,
                msg_id=reply.in_reply_to,
                position=reply.position,
                enqueued_at=enqueued,
                level=reply.degradation_level,
            )
        )
    return honesty


def summary_fields(honesty: Honesty) -> dict[str, Any]:
    """The demo summary's reply fields (the contract: replies_sent, eta_error_median)."""
    table = summarise(honesty.samples)
    overall = table.get("all", {})
    return {
        "replies_sent": honesty.replies_sent,
        "replies_by_kind": dict(sorted(honesty.by_kind.items())),
        "conversations": honesty.conversations,
        "eta_error_median": overall.get("median"),
        "eta_error": table,
        "acks_without_prediction": honesty.no_prediction,
        "acks_without_prediction_by_priority": dict(
            sorted(honesty.no_prediction_by_priority.items())
        ),
    }
