"""`PipelineConfig`: the plain, frozen description of one JetStream pipeline.

The operator converts its pydantic spec into this; `surge demo`, the bench and the tests
build it directly. It is pure data plus validation — no nats imports — so the operator
can build and compare it without a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from surge_workers.contract import (
    PRIORITIES,
    Priority,
    is_valid_prefix,
    is_valid_stream_name,
)
from surge_workers.errors import ConfigError

Storage = Literal["file", "memory"]
Retention = Literal["limits", "workqueue"]


@dataclass(frozen=True)
class PriorityPolicy:
    """Delivery policy of the durable consumer of one priority.

    ``ack_wait`` is how long a delivered message may stay unacknowledged before JetStream
    redelivers it (a crashed worker's messages come back after this). ``backoff`` are the
    nak delays the worker applies after the 1st, 2nd, ... failure (the last value repeats);
    they are deliberately *not* the server-side BackOff, which would override ack_wait.
    """

    ack_wait: float = 30.0
    max_deliver: int = 5
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
    max_ack_pending: int = 10_000

    def nak_delay(self, num_delivered: int) -> float:
        """Delay before the next attempt after ``num_delivered`` failed attempts."""
        if not self.backoff:
            return 0.0
        index = min(max(num_delivered, 1), len(self.backoff)) - 1
        return self.backoff[index]


def _default_policies() -> dict[Priority, PriorityPolicy]:
    return {
        Priority.CRITICAL: PriorityPolicy(
            ack_wait=15.0, max_deliver=8, backoff=(0.5, 1.0, 2.0, 5.0)
        ),
        Priority.NORMAL: PriorityPolicy(),
        Priority.BULK: PriorityPolicy(ack_wait=60.0, max_deliver=5, backoff=(5.0, 30.0, 60.0)),
    }


@dataclass(frozen=True)
class PipelineConfig:
    """One MessagingCluster's stream, consumers, dead-letter stream and KV buckets."""

    stream: str
    subject_prefix: str
    partitions: int = 16
    replicas: int = 1
    storage: Storage = "file"
    retention: Retention = "limits"
    max_age: float = 7 * 24 * 3600.0
    duplicate_window: float = 120.0
    max_msg_size: int = 64 * 1024
    max_bytes: int = -1  # -1 = unlimited; when set, publishers get errors instead of losses
    policies: dict[Priority, PriorityPolicy] = field(default_factory=_default_policies)
    dead_letter: bool = True
    dead_letter_max_age: float = 14 * 24 * 3600.0
    #: The intake stage (composer) and its replies stream; see surge_workers.intake.
    composer: bool = True
    intake: PriorityPolicy = PriorityPolicy(ack_wait=30.0, max_deliver=5, backoff=(1.0,))
    replies_max_age: float = 7 * 24 * 3600.0
    replies_per_conversation: int = 1000
    replies_max_bytes: int = 1 << 30
    #: Must outlast every redelivery of the intake consumer: a recomposed reply is then
    #: always recognised as a duplicate.
    replies_duplicate_window: float = 900.0

    def __post_init__(self) -> None:
        validate(self)

    def policy(self, priority: Priority) -> PriorityPolicy:
        return self.policies.get(priority, PriorityPolicy())

    def __hash__(self) -> int:  # dict field: hash the identity-defining parts only
        return hash((self.stream, self.subject_prefix, self.partitions))


def validate(config: PipelineConfig) -> None:
    """Raise ConfigError naming the first invalid field (checked before any I/O)."""
    if not is_valid_stream_name(config.stream):
        raise ConfigError(f"stream: {config.stream!r} must match [A-Za-z0-9_-]{{1,200}}")
    if not is_valid_prefix(config.subject_prefix):
        raise ConfigError(f"subject_prefix: {config.subject_prefix!r} is not a subject prefix")
    if config.partitions < 1 or config.partitions > 4096:
        raise ConfigError(f"partitions: {config.partitions} must be within 1..4096")
    if config.replicas not in (1, 3, 5):
        raise ConfigError(f"replicas: {config.replicas} must be 1, 3 or 5")
    if config.storage not in ("file", "memory"):
        raise ConfigError(f"storage: {config.storage!r} must be 'file' or 'memory'")
    if config.retention not in ("limits", "workqueue"):
        raise ConfigError(f"retention: {config.retention!r} must be 'limits' or 'workqueue'")
    if config.max_age < 0:
        raise ConfigError("max_age: must be >= 0 (0 = unlimited)")
    if config.duplicate_window <= 0:
        raise ConfigError("duplicate_window: must be > 0, message-id dedup depends on it")
    if config.max_age and config.duplicate_window > config.max_age:
        raise ConfigError("duplicate_window: must not exceed max_age")
    if config.max_msg_size < 256:
        raise ConfigError("max_msg_size: must be >= 256 bytes")
    if config.composer:
        _validate_replies(config)
    for priority, policy in config.policies.items():
        if priority not in PRIORITIES:
            raise ConfigError(f"policies: unknown priority {priority!r}")
        if policy.ack_wait <= 0:
            raise ConfigError(f"policies.{priority}.ack_wait: must be > 0")
        if policy.max_deliver < 1:
            raise ConfigError(f"policies.{priority}.max_deliver: must be >= 1")
        if any(d < 0 for d in policy.backoff):
            raise ConfigError(f"policies.{priority}.backoff: delays must be >= 0")
        if policy.max_ack_pending < 1:
            raise ConfigError(f"policies.{priority}.max_ack_pending: must be >= 1")


def _validate_replies(config: PipelineConfig) -> None:
    intake = config.intake
    if intake.ack_wait <= 0 or intake.max_deliver < 1:
        raise ConfigError("intake: ack_wait must be > 0 and max_deliver >= 1")
    if config.replies_max_age < 0:
        raise ConfigError("replies_max_age: must be >= 0 (0 = unlimited)")
    if config.replies_per_conversation < 1:
        raise ConfigError("replies_per_conversation: must be >= 1")
    redeliveries = intake.ack_wait * intake.max_deliver + sum(intake.backoff) * intake.max_deliver
    if config.replies_duplicate_window < redeliveries:
        raise ConfigError(
            f"replies_duplicate_window: {config.replies_duplicate_window:g}s must outlast the "
            f"intake consumer's redeliveries ({redeliveries:g}s)"
        )
    if config.replies_max_age and config.replies_duplicate_window > config.replies_max_age:
        raise ConfigError("replies_duplicate_window: must not exceed replies_max_age")
