"""What a failed delivery costs, and what happens next: pure decisions, no I/O.

A message's delivery budget (MaxDeliver) is for the message's own faults: a handler that
raises on it or hangs on it. A NATS outage is not the message's fault. When a stream or KV
leader is re-elected, every handler that writes to NATS fails for a few seconds; with a
short back-off the budget of each message in flight would burn out within that window and
good messages would be dead-lettered (the R3 kill -9 chaos scenario saw it: 3 of 900).

So a worker sorts failures:

    POISON   the handler said so (`PoisonError`): dead-letter now.
    INFRA    NATS could not serve the handler (connection lost, no responders, a timeout, a
             5xx from the JetStream API), or the handler timed out while NATS was in trouble:
             not charged to the budget; retried with its own exponential back-off, up to
             `infra_cap` deliveries (then dead-lettered, cause "infra", so a permanent
             fault still ends parked, never looping for ever).
    HANDLER  anything else: charged; dead-lettered once the budget is spent.

The server counts every delivery, charged or not, and a worker cannot know why earlier
deliveries (maybe on another worker) failed. So while this worker has seen NATS trouble
recently (`InfraWatch`), a spent budget defers dead-lettering instead of acting on it.
A worker that never touched the failing leader sees trouble through JetStream's own
advisories (`election_advisories`): every stream or consumer leader election, or lost
quorum, of the pipeline's streams marks every worker's watch. Without them a worker on a
healthy server dead-lettered messages that the others' election-time failures had
pushed past their budget (the R3 kill -9 scenario: 2 of 900, "no acknowledgement after 7
deliveries").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import nats.errors
import nats.js.errors

from surge_workers.contract import (
    dead_letter_stream,
    degradation_bucket,
    routing_bucket,
    transcripts_bucket,
)
from surge_workers.errors import PoisonError
from surge_workers.pipeline import PriorityPolicy
from surge_workers.replies import replies_stream

#: How long after the last sign of NATS trouble a spent budget is still not trusted.
INFRA_WINDOW_S = 30.0
#: Back-off for infrastructure retries: 0.5 s doubling to this ceiling.
INFRA_BACKOFF_MAX_S = 30.0
#: Deliveries a message may use on infrastructure failures: at least this many, or 4x its
#: budget. With the back-off above, 20 deliveries span about 7 minutes of outage.
INFRA_CAP_MIN = 20

_INFRA_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.FlushTimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.SlowConsumerError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


class Failure(StrEnum):
    POISON = "poison"
    INFRA = "infra"
    HANDLER = "handler"


def classify(err: BaseException, *, handler_timed_out: bool, infra_recent: bool) -> Failure:
    """Whose fault a handler's exception is. A handler that ran out of time while NATS was
    in trouble was most likely waiting on NATS."""
    if isinstance(err, PoisonError):
        return Failure.POISON
    # Handlers wrap what NATS raised (the default one raises RetryableError from it): the
    # cause decides, or every stored-transcript failure in an election would be charged.
    for cause in _chain(err):
        if isinstance(cause, _INFRA_ERRORS):
            return Failure.INFRA
        if isinstance(cause, nats.js.errors.APIError) and (cause.code or 0) >= 500:
            return Failure.INFRA
    if handler_timed_out and infra_recent:
        return Failure.INFRA
    return Failure.HANDLER


def _chain(err: BaseException) -> Iterator[BaseException]:
    """err, then what it was raised from (or while handling), innermost last."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


def infra_cap(budget: int) -> int:
    return max(INFRA_CAP_MIN, 4 * budget) if budget > 0 else -1


def infra_delay(num_delivered: int) -> float:
    doublings = min(max(num_delivered, 1) - 1, 8)
    return min(INFRA_BACKOFF_MAX_S, 0.5 * 2.0**doublings)


@dataclass(frozen=True)
class Next:
    """What to do with a failed (or over-budget) delivery."""

    action: Literal["nak", "dead_letter"]
    delay: float = 0.0
    cause: str = ""  # the dead-letter cause label, when action is dead_letter


def after_failure(
    failure: Failure, num_delivered: int, policy: PriorityPolicy, *, infra_recent: bool
) -> Next:
    if failure is Failure.POISON:
        return Next("dead_letter", cause="poison")
    cap = infra_cap(policy.max_deliver)
    if failure is Failure.INFRA:
        if cap > 0 and num_delivered >= cap:
            return Next("dead_letter", cause="infra")
        return Next("nak", delay=infra_delay(num_delivered))
    spent = policy.max_deliver > 0 and num_delivered >= policy.max_deliver
    if spent and (not infra_recent or num_delivered >= cap):
        return Next("dead_letter", cause="max_deliver")
    return Next("nak", delay=policy.nak_delay(num_delivered))


def before_handling(num_delivered: int, budget: int, *, infra_recent: bool) -> bool:
    """True when a delivery must be dead-lettered without running: every earlier one ended
    unanswered (the handler hung or crashed the worker). While NATS was in trouble, lost
    acks explain those deliveries as well, so it runs again, up to the infrastructure cap."""
    if budget <= 0 or num_delivered <= budget:
        return False
    return not infra_recent or num_delivered > infra_cap(budget)


class InfraWatch:
    """When this worker last saw NATS in trouble (a disconnect, a 503 or a leadership
    change on a pull, an infrastructure failure in a handler)."""

    def __init__(
        self, window: float = INFRA_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._last: float | None = None

    def mark(self) -> None:
        self._last = self._clock()

    def recent(self) -> bool:
        return self._last is not None and self._clock() - self._last <= self.window


def election_advisories(stream: str) -> tuple[str, ...]:
    """The JetStream advisory subjects that say a stream a worker writes or reads, or one of
    its consumers, lost its leader or quorum: the message stream, its dead letters, its
    replies and its KV buckets (routing, transcripts, degradation level)."""
    streams = (
        stream,
        dead_letter_stream(stream),
        replies_stream(stream),
        *(f"KV_{bucket(stream)}" for bucket in (routing_bucket, transcripts_bucket)),
        f"KV_{degradation_bucket(stream)}",
    )
    return tuple(
        subject
        for name in streams
        for subject in (
            f"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.{name}",
            f"$JS.EVENT.ADVISORY.STREAM.QUORUM_LOST.{name}",
            f"$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.{name}.*",
            f"$JS.EVENT.ADVISORY.CONSUMER.QUORUM_LOST.{name}.*",
        )
    )
