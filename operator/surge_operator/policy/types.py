"""Values that flow through the decision core: what was observed, what was decided.

Everything here is a frozen dataclass so a tick can be logged, replayed and compared.
Times are plain float seconds on whatever clock the caller uses (monotonic in the
operator, virtual in the simulator); the core never reads a clock itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

# The shared vocabulary is defined once, in the contract below operator and data plane.
from surge_workers.contract import DegradationLevel as DegradationLevel
from surge_workers.contract import Priority

#: Service order of the workers: critical before normal before bulk.
PRIORITY_ORDER: tuple[Priority, ...] = (Priority.CRITICAL, Priority.NORMAL, Priority.BULK)


class Reason(StrEnum):
    """Machine-readable cause of a decision (CamelCase, usable as a condition reason)."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    STEADY = "Steady"
    STABILIZING = "Stabilizing"
    AT_MAX_REPLICAS = "AtMaxReplicas"
    AT_MIN_REPLICAS = "AtMinReplicas"
    HOLD_MISSING_METRICS = "HoldMissingMetrics"
    HOLD_STALE_METRICS = "HoldStaleMetrics"
    DISABLED = "AutoscalingDisabled"


@dataclass(frozen=True, slots=True)
class PriorityMetrics:
    """What the queue of one priority looked like at observation time.

    `backlog` is num_pending + num_ack_pending of the priority's consumer.
    `arrival_rate` counts messages accepted into the stream per second; `offered_rate`
    also counts what the gateway throttled or shed, when known, so the degradation
    machine can tell whether the demand it is hiding has gone away.
    """

    backlog: int | None
    arrival_rate: float | None = None
    oldest_unacked_age: float | None = None
    p95_wait: float | None = None
    offered_rate: float | None = None

    @property
    def complete(self) -> bool:
        return self.backlog is not None and self.arrival_rate is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One tick's view of a cluster's queue and workers.

    `at` is when the decision is made; `observed_at` when the metrics were read. The
    difference is the staleness the policy checks. `completion_rate` is acks per second
    over the last interval, all priorities together (ack floor deltas).
    """

    at: float
    observed_at: float
    priorities: Mapping[Priority, PriorityMetrics]
    current_replicas: int
    ready_replicas: int
    completion_rate: float | None = None
    #: Messages not yet delivered to any worker (sum of num_pending). Positive means the
    #: workers were saturated, so completion_rate measured their capacity.
    waiting: int | None = None
    error_rate: float | None = None

    @property
    def staleness(self) -> float:
        return max(0.0, self.at - self.observed_at)

    def total_backlog(self) -> int:
        return sum(m.backlog or 0 for m in self.priorities.values())

    def total_arrival_rate(self) -> float:
        return sum(m.arrival_rate or 0.0 for m in self.priorities.values())


@dataclass(frozen=True, slots=True)
class DegradationState:
    """Carried between ticks by the degradation machine."""

    level: DegradationLevel = DegradationLevel.NORMAL
    #: Since when the overload (or the recovery) that would change the level has lasted.
    pressure_since: float | None = None
    recovery_since: float | None = None


@dataclass(frozen=True, slots=True)
class ScalingState:
    """The little memory the scaling policy carries from one tick to the next.

    `demand_history` and `drain_history` keep (at, replicas) recommendations inside the
    stabilisation windows; `rate_history` and `protected_history` keep (at, arrival rate)
    samples for the trend.
    """

    rate_history: tuple[tuple[float, float], ...] = ()
    #: (at, arrival rate) of the protected classes alone (`protected_priorities`): the
    #: degradation level's own trend, which a flood of a sheddable class does not skew.
    protected_history: tuple[tuple[float, float], ...] = ()
    demand_history: tuple[tuple[float, int], ...] = ()
    drain_history: tuple[tuple[float, int], ...] = ()
    service_rate: float | None = None
    last_at: float | None = None
    #: Ready replicas at the previous tick: a service-rate sample only counts when the
    #: pool did not change during the interval it was measured over.
    last_ready: int | None = None
    degradation: DegradationState = field(default_factory=DegradationState)
    #: Measured pod start-up time (None: not measured yet, the spec's value applies).
    startup_s: float | None = None
    #: When each replica asked for and not ready yet was asked for, oldest first.
    starting: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now, and why, in words a human reads in `kubectl describe`."""

    at: float
    replicas: int
    degradation_level: DegradationLevel
    reason: Reason
    message: str
    #: Replicas the model wants before min/max/step bounds (what degradation compares).
    unbounded_replicas: float = 0.0
    predicted_arrival_rate: float | None = None
    service_rate: float | None = None
    #: Seconds a replica asked for now should take to become ready (the pool's measured
    #: start-up, never less than the oldest replica still starting has taken already);
    #: None: not measured, the spec's podStartupSeconds applies.
    startup_s: float | None = None

    @property
    def holding(self) -> bool:
        return self.reason in (Reason.HOLD_MISSING_METRICS, Reason.HOLD_STALE_METRICS)


def frozen_mapping(
    values: Mapping[Priority, PriorityMetrics],
) -> Mapping[Priority, PriorityMetrics]:
    """A read-only copy, so a Snapshot cannot be changed behind the policy's back."""
    return MappingProxyType(dict(values))
