"""Idempotent provisioning of a pipeline: stream, one durable pull consumer per priority,
dead-letter stream and KV buckets.

Desired JetStream configs are built by pure functions (``desired_*``) so the operator can
show or diff them; :func:`provision_pipeline` compares them with what exists, creates what
is missing, updates what JetStream allows to change, and raises
:class:`~surge_workers.errors.ImmutableFieldError` naming the field it cannot change
(storage, retention) instead of silently keeping the old value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from surge_workers.contract import (
    DEGRADATION_KEY,
    PRIORITIES,
    DegradationState,
    Priority,
    consumer_name,
    dead_letter_stream,
    dead_letter_subject,
    degradation_bucket,
    encode_degradation,
    priority_filter,
    routing_bucket,
    stream_subjects,
    transcripts_bucket,
)
from surge_workers.errors import ImmutableFieldError, ProvisionError
from surge_workers.intake import INTAKE_CONSUMER
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.replies import replies_stream, replies_subjects

# Consumer metadata keys: the worker reads its nak backoff from the consumer itself, so
# the pipeline spec is the single source of truth for retry timing.
META_BACKOFF = "surge.dev/nak-backoff"
META_PRIORITY = "surge.dev/priority"
# The delivery budget lives in metadata, not in the consumer's MaxDeliver: a server-side
# MaxDeliver stops redelivering after the last attempt, and if that attempt's dead-letter
# publish failed (or its core-NATS advisory was missed) the message would be stranded,
# neither processed nor dead-lettered. The worker counts deliveries itself instead.
META_MAX_DELIVER = "surge.dev/max-deliver"


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


Kind = Literal["stream", "consumer", "kv"]


@dataclass(frozen=True)
class Change:
    kind: Kind
    name: str
    action: Action
    fields: tuple[str, ...] = ()  # for UPDATED: the fields that changed


@dataclass(frozen=True)
class ProvisionResult:
    changes: tuple[Change, ...]

    def names(self, action: Action) -> tuple[str, ...]:
        return tuple(f"{c.kind}/{c.name}" for c in self.changes if c.action is action)

    @property
    def created(self) -> tuple[str, ...]:
        return self.names(Action.CREATED)

    @property
    def updated(self) -> tuple[str, ...]:
        return self.names(Action.UPDATED)

    @property
    def unchanged(self) -> tuple[str, ...]:
        return self.names(Action.UNCHANGED)

    @property
    def changed(self) -> bool:
        return any(c.action is not Action.UNCHANGED for c in self.changes)

    def summary(self) -> str:
        parts = []
        for c in self.changes:
            detail = f" ({', '.join(c.fields)})" if c.fields else ""
            parts.append(f"{c.kind}/{c.name} {c.action.value}{detail}")
        return "; ".join(parts)


# --- pure: desired configs ------------------------------------------------------------------

_STORAGE = {"file": StorageType.FILE, "memory": StorageType.MEMORY}
_RETENTION = {"limits": RetentionPolicy.LIMITS, "workqueue": RetentionPolicy.WORK_QUEUE}


def desired_stream_config(config: PipelineConfig) -> StreamConfig:
    return StreamConfig(
        name=config.stream,
        description=f"surge pipeline {config.stream}",
        subjects=stream_subjects(config.subject_prefix),
        retention=_RETENTION[config.retention],
        storage=_STORAGE[config.storage],
        num_replicas=config.replicas,
        max_age=config.max_age,
        duplicate_window=config.duplicate_window,
        max_msg_size=config.max_msg_size,
        max_bytes=config.max_bytes,
        # With a byte limit, refusing new writes is visible to publishers; discarding old
        # messages would lose unprocessed support requests silently.
        discard=DiscardPolicy.NEW if config.max_bytes > 0 else DiscardPolicy.OLD,
        allow_direct=True,
    )


def desired_dead_letter_config(config: PipelineConfig) -> StreamConfig:
    return StreamConfig(
        name=dead_letter_stream(config.stream),
        description=f"dead letters of {config.stream}",
        subjects=[dead_letter_subject(config.subject_prefix, p) for p in PRIORITIES],
        retention=RetentionPolicy.LIMITS,
        storage=_STORAGE[config.storage],
        num_replicas=config.replicas,
        max_age=config.dead_letter_max_age,
        duplicate_window=min(config.duplicate_window, config.dead_letter_max_age or 120.0),
        max_bytes=-1,
        max_msg_size=-1,
        discard=DiscardPolicy.OLD,
    )


def desired_replies_config(config: PipelineConfig) -> StreamConfig:
    """Replies, one subject per tenant and conversation; old ones age out (limits)."""
    return StreamConfig(
        name=replies_stream(config.stream),
        description=f"replies to the customers of {config.stream}",
        subjects=replies_subjects(config.subject_prefix),
        retention=RetentionPolicy.LIMITS,
        storage=_STORAGE[config.storage],
        num_replicas=config.replicas,
        max_age=config.replies_max_age,
        max_msgs_per_subject=config.replies_per_conversation,
        max_bytes=config.replies_max_bytes,
        max_msg_size=config.max_msg_size,
        duplicate_window=config.replies_duplicate_window,
        discard=DiscardPolicy.OLD,
        allow_direct=True,
    )


def desired_intake_config(config: PipelineConfig) -> ConsumerConfig:
    """Every new message of every priority, at once, for the composer (no filter)."""
    policy = config.intake
    return ConsumerConfig(
        name=INTAKE_CONSUMER,
        durable_name=INTAKE_CONSUMER,
        description="surge composer: acknowledges new conversations on arrival",
        # New only: provisioning an existing pipeline must not greet its backlog.
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=policy.ack_wait,
        max_deliver=policy.max_deliver,
        max_ack_pending=policy.max_ack_pending,
        metadata={META_BACKOFF: _backoff_text(policy)},
    )


def _backoff_text(policy: PriorityPolicy) -> str:
    return ",".join(f"{d:g}" for d in policy.backoff)


def parse_backoff(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    return tuple(float(part) for part in text.split(",") if part)


def desired_consumer_config(config: PipelineConfig, priority: Priority) -> ConsumerConfig:
    policy = config.policy(priority)
    name = consumer_name(priority)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"surge workers, {priority.value} messages",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=priority_filter(config.subject_prefix, priority),
        ack_wait=policy.ack_wait,
        max_deliver=-1,  # unlimited: see META_MAX_DELIVER
        max_ack_pending=policy.max_ack_pending,
        metadata={
            META_BACKOFF: _backoff_text(policy),
            META_PRIORITY: priority.value,
            META_MAX_DELIVER: str(policy.max_deliver),
        },
    )


def desired_kv_configs(config: PipelineConfig) -> list[KeyValueConfig]:
    storage = _STORAGE[config.storage]
    return [
        KeyValueConfig(
            bucket=degradation_bucket(config.stream),
            description="degradation level written by the operator, watched by the data plane",
            history=5,
            storage=storage,
            replicas=config.replicas,
        ),
        KeyValueConfig(
            bucket=routing_bucket(config.stream),
            description="sticky team assignment per conversation",
            history=1,
            storage=storage,
            replicas=config.replicas,
        ),
        KeyValueConfig(
            bucket=transcripts_bucket(config.stream),
            description="conversation transcripts, one key per message",
            history=1,
            storage=storage,
            replicas=config.replicas,
            max_value_size=config.max_msg_size * 2,
        ),
    ]


# --- pure: diffs ------------------------------------------------------------------------------

_STREAM_MUTABLE = (
    "subjects",
    "max_msgs_per_subject",
    "num_replicas",
    "max_age",
    "duplicate_window",
    "max_msg_size",
    "max_bytes",
    "discard",
    "description",
)
_STREAM_IMMUTABLE = ("storage", "retention")
_CONSUMER_MUTABLE = ("ack_wait", "max_deliver", "max_ack_pending", "filter_subject", "description")


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return sorted(_norm(v) for v in value)
    if isinstance(value, StrEnum) or hasattr(value, "value"):
        return getattr(value, "value", value)
    return value


def stream_diff(current: StreamConfig, desired: StreamConfig, resource: str) -> tuple[str, ...]:
    """Changed mutable fields; raises ImmutableFieldError for an immutable one."""
    for name in _STREAM_IMMUTABLE:
        have, want = _norm(getattr(current, name)), _norm(getattr(desired, name))
        if have != want:
            raise ImmutableFieldError(resource, name, have, want)
    return tuple(
        name
        for name in _STREAM_MUTABLE
        if _norm(getattr(current, name)) != _norm(getattr(desired, name))
    )


def consumer_diff(current: ConsumerConfig, desired: ConsumerConfig) -> tuple[str, ...]:
    changed = [
        name
        for name in _CONSUMER_MUTABLE
        if _norm(getattr(current, name)) != _norm(getattr(desired, name))
    ]
    have_meta = current.metadata or {}
    for key, value in (desired.metadata or {}).items():
        if have_meta.get(key) != value:
            changed.append(f"metadata.{key}")
    return tuple(changed)


# --- I/O ----------------------------------------------------------------------------------------


async def _ensure_stream(js: JetStreamContext, desired: StreamConfig) -> Change:
    assert desired.name is not None
    resource = f"stream/{desired.name}"
    try:
        info = await js.stream_info(desired.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(desired)
        except nats.js.errors.APIError as err:
            raise ProvisionError(resource, f"create failed: {err.description}") from err
        return Change("stream", desired.name, Action.CREATED)
    changed = stream_diff(info.config, desired, resource)
    if not changed:
        return Change("stream", desired.name, Action.UNCHANGED)
    try:
        await js.update_stream(desired)
    except nats.js.errors.APIError as err:
        raise ProvisionError(
            resource, f"update of {', '.join(changed)} refused: {err.description}"
        ) from err
    return Change("stream", desired.name, Action.UPDATED, changed)


async def _ensure_consumer(js: JetStreamContext, stream: str, desired: ConsumerConfig) -> Change:
    assert desired.name is not None
    resource = f"consumer/{stream}/{desired.name}"
    try:
        info = await js.consumer_info(stream, desired.name)
    except nats.js.errors.NotFoundError:
        info = None
    if info is not None:
        changed = consumer_diff(info.config, desired)
        if not changed:
            return Change("consumer", desired.name, Action.UNCHANGED)
    try:
        # The create endpoint without an explicit action is create-or-update on the server.
        await js.add_consumer(stream, desired)
    except nats.js.errors.APIError as err:
        raise ProvisionError(resource, f"create/update refused: {err.description}") from err
    if info is None:
        return Change("consumer", desired.name, Action.CREATED)
    return Change("consumer", desired.name, Action.UPDATED, changed)


async def _ensure_kv(js: JetStreamContext, desired: KeyValueConfig) -> Change:
    try:
        info = await js.stream_info(f"KV_{desired.bucket}")
    except nats.js.errors.NotFoundError:
        info = None
    if info is not None:
        have = _norm(info.config.storage)
        want = _norm(desired.storage)
        if have != want:
            raise ImmutableFieldError(f"kv/{desired.bucket}", "storage", have, want)
        if not info.config.allow_msg_ttl:
            # Buckets from before per-message TTLs: transcripts and offered.* need them.
            await js.update_stream(replace(info.config, allow_msg_ttl=True))
            return Change("kv", desired.bucket, Action.UPDATED, ("allow_msg_ttl",))
        return Change("kv", desired.bucket, Action.UNCHANGED)
    try:
        await js.create_key_value(desired)
    except nats.js.errors.APIError as err:
        raise ProvisionError(f"kv/{desired.bucket}", f"create failed: {err.description}") from err
    return Change("kv", desired.bucket, Action.CREATED)


async def _seed_degradation(js: JetStreamContext, config: PipelineConfig) -> None:
    """Give watchers an initial value; never overwrites a level the operator set."""
    kv = await js.key_value(degradation_bucket(config.stream))
    with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
        await kv.create(DEGRADATION_KEY, encode_degradation(DegradationState()))


async def provision_pipeline(js: JetStreamContext, config: PipelineConfig) -> ProvisionResult:
    """Create or update everything the pipeline needs; safe to call on every reconcile.

    Raises ImmutableFieldError before touching anything else when the stream's storage or
    retention differ from the spec, and ProvisionError when JetStream refuses a request.
    """
    changes: list[Change] = [await _ensure_stream(js, desired_stream_config(config))]
    for priority in PRIORITIES:
        changes.append(
            await _ensure_consumer(js, config.stream, desired_consumer_config(config, priority))
        )
    if config.dead_letter:
        changes.append(await _ensure_stream(js, desired_dead_letter_config(config)))
    if config.composer:
        changes.append(await _ensure_stream(js, desired_replies_config(config)))
        changes.append(await _ensure_consumer(js, config.stream, desired_intake_config(config)))
    for kv_config in desired_kv_configs(config):
        changes.append(await _ensure_kv(js, kv_config))
    await _seed_degradation(js, config)
    return ProvisionResult(tuple(changes))


async def _delete_streams(js: JetStreamContext, names: Iterable[str]) -> list[str]:
    deleted = []
    for name in names:
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            continue
        deleted.append(name)
    return deleted


async def delete_pipeline(js: JetStreamContext, config: PipelineConfig) -> tuple[str, ...]:
    """Delete stream (and its consumers), dead-letter stream and KV buckets.

    Idempotent: missing pieces are skipped. Returns the stream names actually deleted
    (KV buckets appear as ``KV_<bucket>``).
    """
    names = [config.stream, dead_letter_stream(config.stream), replies_stream(config.stream)]
    names += [f"KV_{kv.bucket}" for kv in desired_kv_configs(config)]
    return tuple(await _delete_streams(js, names))
