"""Read the queue state of a pipeline straight from JetStream (no Prometheus needed).

The autoscaler builds its metrics snapshot on :func:`read_queue_state`: per priority the
consumer's backlog (``num_pending``), in-flight (``num_ack_pending``), delivered and
ack-floor stream sequences and the age of the oldest unacknowledged message; for the
stream its ``last_seq`` (differences over time give the arrival rate; ack-floor
differences give the service rate).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from surge_workers.contract import PRIORITIES, Priority, consumer_name, dead_letter_stream
from surge_workers.pipeline import PipelineConfig


@dataclass(frozen=True)
class PriorityQueueState:
    priority: Priority
    consumer: str
    num_pending: int  # in the stream, not yet delivered
    num_ack_pending: int  # delivered, not yet acknowledged (being worked on or lost)
    num_redelivered: int
    num_waiting: int  # open pull requests: a rough count of idle workers
    delivered_stream_seq: int
    ack_floor_stream_seq: int
    oldest_unacked_age: float | None  # seconds; None when nothing is outstanding/unknown

    @property
    def backlog(self) -> int:
        """KEDA's metric: num_pending + num_ack_pending."""
        return self.num_pending + self.num_ack_pending


@dataclass(frozen=True)
class QueueState:
    stream: str
    observed_at: float  # unix seconds
    last_seq: int
    first_seq: int
    messages: int
    bytes: int
    priorities: Mapping[Priority, PriorityQueueState]
    dead_letters: int | None  # messages in the dead-letter stream, None if it is missing

    @property
    def backlog(self) -> int:
        return sum(p.backlog for p in self.priorities.values())

    @property
    def oldest_unacked_age(self) -> float | None:
        ages = [p.oldest_unacked_age for p in self.priorities.values()]
        known = [a for a in ages if a is not None]
        return max(known) if known else None


class QueueStateUnavailable(Exception):  # noqa: N818 - reads as a condition, like KeyError
    """The stream or one of its consumers does not exist (yet)."""


def priority_state_from_info(
    priority: Priority, info: ConsumerInfo, oldest_unacked_age: float | None
) -> PriorityQueueState:
    """Convert a nats-py ConsumerInfo in one place (strict on the fields we rely on)."""
    return PriorityQueueState(
        priority=priority,
        consumer=info.name,
        num_pending=info.num_pending or 0,
        num_ack_pending=info.num_ack_pending or 0,
        num_redelivered=info.num_redelivered or 0,
        num_waiting=info.num_waiting or 0,
        delivered_stream_seq=info.delivered.stream_seq if info.delivered else 0,
        ack_floor_stream_seq=info.ack_floor.stream_seq if info.ack_floor else 0,
        oldest_unacked_age=oldest_unacked_age,
    )


async def _oldest_unacked_age(
    js: JetStreamContext, stream: str, info: ConsumerInfo, now: float
) -> float | None:
    if not (info.num_pending or info.num_ack_pending):
        return None
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    subject = info.config.filter_subject
    try:
        # The first message after the ack floor matching the filter is, by definition of
        # the floor, not yet acknowledged: its stream timestamp gives the oldest wait.
        msg = await js.get_msg(stream, seq=floor + 1, subject=subject, next=True)
    except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
        return None
    if msg.time is None:
        return None
    return max(0.0, now - msg.time.timestamp())


async def read_queue_state(
    js: JetStreamContext,
    config: PipelineConfig,
    *,
    now: float | None = None,
    with_oldest_age: bool = True,
) -> QueueState:
    """One consistent-enough read of stream + consumers (+ DLQ count).

    ``now`` (unix seconds) is injectable for tests; costs 1 + 3 (+3 with ages) + 1 requests.
    Raises QueueStateUnavailable when the stream or a consumer is missing.
    """
    observed_at = time.time() if now is None else now
    try:
        stream = await js.stream_info(config.stream)
    except nats.js.errors.NotFoundError as err:
        raise QueueStateUnavailable(f"stream {config.stream} does not exist") from err
    infos: dict[Priority, ConsumerInfo] = {}
    for p in PRIORITIES:
        try:
            infos[p] = await js.consumer_info(config.stream, consumer_name(p))
        except nats.js.errors.NotFoundError as err:
            raise QueueStateUnavailable(
                f"consumer {consumer_name(p)} of stream {config.stream} does not exist"
            ) from err
    priorities: dict[Priority, PriorityQueueState] = {}
    for priority, info in infos.items():
        age = (
            await _oldest_unacked_age(js, config.stream, info, observed_at)
            if with_oldest_age
            else None
        )
        priorities[priority] = priority_state_from_info(priority, info, age)
    dead_letters: int | None = None
    if config.dead_letter:
        try:
            dlq = await js.stream_info(dead_letter_stream(config.stream))
            dead_letters = dlq.state.messages
        except nats.js.errors.NotFoundError:
            dead_letters = None
    return QueueState(
        stream=config.stream,
        observed_at=observed_at,
        last_seq=stream.state.last_seq,
        first_seq=stream.state.first_seq,
        messages=stream.state.messages,
        bytes=stream.state.bytes,
        priorities=priorities,
        dead_letters=dead_letters,
    )
