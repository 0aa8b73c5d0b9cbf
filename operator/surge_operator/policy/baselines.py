"""Baselines every performance claim is measured against, in the same run.

KEDA + HPA
    KEDA's NATS JetStream scaler exposes, per consumer, `num_pending + num_ack_pending`
    (read from the consumer leader) as an external metric with an AverageValue target of
    `lagThreshold`. The HPA controller then, every sync period (15 s):

    * per metric: usageRatio = metric / (lagThreshold x status.replicas); inside the 10 %
      tolerance keep the current count, else ceil(metric / lagThreshold)
      (replica_calculator.go GetExternalPerPodMetricReplicas); the max over metrics wins;
    * stabilises: the max recommendation of the last 300 s when scaling down, the min of
      the last 0 s (i.e. none) when scaling up (stabilizeRecommendationWithBehaviors);
    * rate-limits scale-up to the larger of +100 % or +4 pods per 15 s counted from the
      replicas at the start of the period, scale-down to -100 % per 15 s
      (convertDesiredReplicasWithBehaviorRate, default behaviour);
    * clamps to [minReplicas, maxReplicas].

    KEDA's own 30 s pollingInterval only governs activation (0 <-> 1); with
    minReplicaCount >= 1 the HPA's sync period is what matters. `KedaConfig.fair` sizes
    lagThreshold the usual way: the backlog one replica clears within the latency target
    (target / per-message processing time).

Oracle
    Knows the arrivals to come. At each tick it asks for the fewest replicas that serve
    the arrivals expected once a new pod is ready, at 100 % utilisation, plus what clears
    the backlog within the targets. It pays for start-up like everyone else but never
    holds capacity it does not need: a lower bound on replica-seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from surge_operator.api import Priority
from surge_operator.policy.config import ScalingConfig
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    Decision,
    DegradationLevel,
    Reason,
    Snapshot,
)


@dataclass(frozen=True, slots=True)
class KedaConfig:
    lag_thresholds: Mapping[Priority, float]
    min_replicas: int = 1
    max_replicas: int = 20
    sync_period_s: float = 15.0
    tolerance: float = 0.1
    scale_up_percent: float = 100.0
    scale_up_pods: int = 4
    scale_up_period_s: float = 15.0
    scale_down_percent: float = 100.0
    scale_down_period_s: float = 15.0
    scale_down_stabilization_s: float = 300.0

    @classmethod
    def fair(cls, scaling: ScalingConfig, service_rate: float) -> KedaConfig:
        """lagThreshold per consumer = latency target / per-message processing time."""
        thresholds = {
            p: float(max(1, round(scaling.latency_target(p) * service_rate)))
            for p in PRIORITY_ORDER
        }
        return cls(
            lag_thresholds=MappingProxyType(thresholds),
            min_replicas=max(1, scaling.min_replicas),
            max_replicas=scaling.max_replicas,
        )


@dataclass(frozen=True, slots=True)
class KedaState:
    last_sync: float | None = None
    #: (at, recommendation) of past syncs, for the stabilisation windows.
    recommendations: tuple[tuple[float, int], ...] = ()
    #: (at, replicas added) of past scale-ups, for the rate limit.
    scale_ups: tuple[tuple[float, int], ...] = ()
    scale_downs: tuple[tuple[float, int], ...] = field(default=())


def keda_decide(
    snapshot: Snapshot, config: KedaConfig, state: KedaState
) -> tuple[Decision, KedaState]:
    """One HPA controller pass over KEDA's metrics (pure). Between syncs, nothing changes."""
    current = snapshot.current_replicas
    at = snapshot.at
    if state.last_sync is not None and at - state.last_sync < config.sync_period_s - 1e-9:
        return _decision(at, current, Reason.STEADY, "between HPA syncs"), state

    if any(
        snapshot.priorities.get(p) is None or snapshot.priorities[p].backlog is None
        for p in config.lag_thresholds
    ):
        # The HPA skips a metric it cannot read; with no metric at all it keeps the size.
        return _decision(at, current, Reason.HOLD_MISSING_METRICS, "metric unavailable"), state

    proposal = _metric_proposal(snapshot, config)
    # A Deployment at 0 replicas is KEDA's activation business; we keep >= 1.
    window = config.scale_down_stabilization_s
    recent = tuple((t, r) for t, r in state.recommendations if at - t < window)
    recommendations = (*recent, (at, proposal))
    stabilized = _stabilize(current, proposal, recommendations)
    scale_ups = tuple((t, n) for t, n in state.scale_ups if at - t < config.scale_up_period_s)
    scale_downs = tuple((t, n) for t, n in state.scale_downs if at - t < config.scale_down_period_s)
    replicas = _rate_limited(current, stabilized, scale_ups, scale_downs, config)

    if replicas > current:
        scale_ups += ((at, replicas - current),)
        reason, message = Reason.SCALE_UP, f"HPA scaling up {current} -> {replicas}"
    elif replicas < current:
        scale_downs += ((at, current - replicas),)
        reason, message = Reason.SCALE_DOWN, f"HPA scaling down {current} -> {replicas}"
    else:
        reason, message = Reason.STEADY, f"HPA steady at {current}"
    new_state = KedaState(
        last_sync=at, recommendations=recommendations, scale_ups=scale_ups, scale_downs=scale_downs
    )
    return _decision(at, replicas, reason, message, unbounded=proposal), new_state


def _metric_proposal(snapshot: Snapshot, config: KedaConfig) -> int:
    """Max over the per-consumer metrics of the HPA's AverageValue calculation."""
    status_replicas = max(1, snapshot.current_replicas)
    proposal = 0
    for priority, threshold in config.lag_thresholds.items():
        lag = snapshot.priorities[priority].backlog or 0
        ratio = lag / (threshold * status_replicas)
        if abs(1.0 - ratio) <= config.tolerance:
            replicas = snapshot.current_replicas
        else:
            replicas = math.ceil(lag / threshold)
        proposal = max(proposal, replicas)
    return proposal


def _stabilize(current: int, proposal: int, recommendations: tuple[tuple[float, int], ...]) -> int:
    """Scale-up window 0 s (take the proposal), scale-down window: max of the window."""
    up = proposal
    down = max(r for _, r in recommendations)
    recommendation = current
    if recommendation < up:
        recommendation = up
    if recommendation > down:
        recommendation = down
    return recommendation


def _rate_limited(
    current: int,
    desired: int,
    scale_ups: tuple[tuple[float, int], ...],
    scale_downs: tuple[tuple[float, int], ...],
    config: KedaConfig,
) -> int:
    if desired > current:
        period_start = current - sum(n for _, n in scale_ups)
        limit = max(
            period_start + config.scale_up_pods,
            math.ceil(period_start * (1 + config.scale_up_percent / 100)),
        )
        return min(desired, max(limit, current), config.max_replicas)
    if desired < current:
        period_start = current + sum(n for _, n in scale_downs)
        limit = math.ceil(period_start * (1 - config.scale_down_percent / 100))
        return max(desired, limit, config.min_replicas)
    return max(config.min_replicas, min(config.max_replicas, current))


def oracle_replicas(
    upcoming_arrival_rate: float,
    backlog: Mapping[Priority, float],
    upcoming_by_priority: Mapping[Priority, float],
    service_rate: float,
    config: ScalingConfig,
) -> int:
    """Fewest replicas for the arrivals ahead at full utilisation, plus clearing backlogs.

    `upcoming_arrival_rate` is the mean arrival rate over the near future (once a pod
    started now is ready); `backlog` what is queued now, per priority.
    """
    need = upcoming_arrival_rate / service_rate
    cum_rate = 0.0
    cum_backlog = 0.0
    for priority in PRIORITY_ORDER:
        cum_rate += upcoming_by_priority.get(priority, 0.0)
        cum_backlog += backlog.get(priority, 0.0)
        budget = max(config.tick_s, 0.5 * config.latency_target(priority))
        need = max(need, (cum_rate + cum_backlog / budget) / service_rate)
    return config.bounded(max(0, math.ceil(need - 1e-6)))


def _decision(
    at: float, replicas: int, reason: Reason, message: str, *, unbounded: int | None = None
) -> Decision:
    return Decision(
        at=at,
        replicas=replicas,
        degradation_level=DegradationLevel.NORMAL,
        reason=reason,
        message=message,
        unbounded_replicas=float(unbounded if unbounded is not None else replicas),
    )
