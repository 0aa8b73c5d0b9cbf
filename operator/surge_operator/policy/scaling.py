"""The Surge scaling policy: a snapshot in, desired replicas and a degradation level out.

Model, per tick:

* arrival rate: a least-squares line through the last `trend_window_s` of samples,
  extrapolated over the time a new pod needs to become useful (start-up + one tick), and
  never below the latest sample, so a step up is seen at once and a ramp ahead of time;
* service rate per replica: measured from ack progress while the workers were saturated
  (otherwise completions only say how much work there was), smoothed; the spec's hint
  until a measurement exists;
* demand = predicted arrivals / (service rate x target utilisation);
* drain = for each priority, in service order, the replicas that serve the arrivals of it
  and everything served before it *and* clear their backlog within half its latency target
  (sooner when its oldest message is already close to the target);
* scale up at once to max(demand, drain), by at most `max_step`; scale down only to the
  largest demand seen over the stabilisation window (backlog-drain peaks are held only
  while their pods start, because a drained backlog does not come back by itself);
* hold the current size when metrics are missing or stale, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TypeVar

from surge_operator.api import Priority
from surge_operator.policy.config import PolicyConfig, ScalingConfig
from surge_operator.policy.degradation import (
    DegradationInputs,
    next_degradation,
    served_priorities,
)
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    Decision,
    DegradationLevel,
    PriorityMetrics,
    Reason,
    ScalingState,
    Snapshot,
)

#: Tolerance when rounding replica counts up, so 3.0000001 does not become 4.
_EPS = 1e-6
#: Weight of a new service-rate sample in the smoothed estimate.
_SERVICE_RATE_ALPHA = 0.3

_T = TypeVar("_T")


def decide(
    snapshot: Snapshot, config: PolicyConfig, state: ScalingState
) -> tuple[Decision, ScalingState]:
    """Decide the worker count and degradation level for this tick (pure)."""
    scaling = config.scaling
    current = snapshot.current_replicas
    if not scaling.enabled:
        return _hold(snapshot, state, Reason.DISABLED, "autoscaling is disabled", current), state

    missing = _missing_priorities(snapshot.priorities)
    if missing:
        message = f"holding at {current} replicas: no metrics for {', '.join(missing)}"
        replicas = scaling.bounded(current)
        return _hold(snapshot, state, Reason.HOLD_MISSING_METRICS, message, replicas), _touch(
            state, snapshot.at
        )
    if snapshot.staleness > scaling.max_staleness_s:
        message = (
            f"holding at {current} replicas: metrics are {snapshot.staleness:.1f}s old "
            f"(limit {scaling.max_staleness_s:.1f}s)"
        )
        replicas = scaling.bounded(current)
        return _hold(snapshot, state, Reason.HOLD_STALE_METRICS, message, replicas), _touch(
            state, snapshot.at
        )

    service_rate = _service_rate(snapshot, state.service_rate, scaling)
    rate_history = _window(
        (*state.rate_history, (snapshot.at, snapshot.total_arrival_rate())),
        snapshot.at,
        scaling.trend_window_s,
    )
    predicted = predict_arrival_rate(rate_history, snapshot.at, lead_s=_lead(scaling))

    if service_rate is None:
        return _explore(snapshot, config, state, rate_history, predicted)

    level = state.degradation.level
    served = served_priorities(level, config.degradation.sheddable)
    demand = demand_replicas(predicted, service_rate, scaling.target_utilization)
    drain = drain_replicas(snapshot, service_rate, scaling, predicted)
    served_drain = drain_replicas(snapshot, service_rate, scaling, predicted, only=served)
    restored = _restored_demand(snapshot, config, service_rate, predicted, level)

    demand_rec = _ceil(demand)
    drain_rec = _ceil(drain)
    demand_history = _window(
        (*state.demand_history, (snapshot.at, demand_rec)),
        snapshot.at,
        scaling.scale_down_stabilization_s,
    )
    drain_history = _window(
        (*state.drain_history, (snapshot.at, drain_rec)),
        snapshot.at,
        min(scaling.scale_down_stabilization_s, _drain_hold_s(scaling)),
    )
    wanted = max(demand_rec, drain_rec)
    held = max(max(r for _, r in demand_history), max(r for _, r in drain_history))

    replicas, reason, message = _apply_bounds(current, wanted, held, scaling)

    degradation = next_degradation(
        state.degradation,
        DegradationInputs(
            demand_replicas=max(
                served_demand(snapshot, served, service_rate, scaling, predicted), served_drain
            ),
            restored_demand_replicas=restored,
            max_replicas=scaling.max_replicas,
            ready_replicas=snapshot.ready_replicas,
            latency_breached=bool(breached_priorities(snapshot, scaling, served)),
        ),
        config.degradation,
        snapshot.at,
    )
    if degradation.level != level:
        verb = "raised" if degradation.level > level else "lowered"
        message += f"; degradation {verb} to {degradation.level.value} ({degradation.level.name})"

    decision = Decision(
        at=snapshot.at,
        replicas=replicas,
        degradation_level=degradation.level,
        reason=reason,
        message=message,
        unbounded_replicas=max(demand, drain),
        predicted_arrival_rate=predicted,
        service_rate=service_rate,
    )
    new_state = ScalingState(
        rate_history=rate_history,
        demand_history=demand_history,
        drain_history=drain_history,
        service_rate=service_rate,
        last_at=snapshot.at,
        degradation=degradation,
    )
    return decision, new_state


# --------------------------------------------------------------------------- model pieces


def predict_arrival_rate(
    history: Iterable[tuple[float, float]], at: float, *, lead_s: float
) -> float:
    """Arrival rate expected `lead_s` after `at`: trend line, never below the last sample.

    Falling trends are not extrapolated: scaling down waits for measured demand.
    """
    points = list(history)
    if not points:
        return 0.0
    last = points[-1][1]
    if len(points) < 3:
        return max(0.0, last)
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t <= 0:
        return max(0.0, last)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var_t
    level_now = mean_r + slope * (at - mean_t)
    ahead = level_now + max(0.0, slope) * lead_s
    return max(0.0, last, ahead)


def demand_replicas(arrival_rate: float, service_rate: float, utilization: float) -> float:
    """Replicas that serve `arrival_rate` with every replica busy `utilization` of the time."""
    return arrival_rate / (service_rate * utilization)


def drain_replicas(
    snapshot: Snapshot,
    service_rate: float,
    config: ScalingConfig,
    predicted_total: float,
    *,
    only: frozenset[Priority] | None = None,
) -> float:
    """Replicas to keep every priority's wait under its target, in service order.

    Workers serve critical first, so priority k waits for the backlog of every class up to
    and including k, while those classes keep arriving. The worst k decides.
    """
    scale = _prediction_scale(snapshot, predicted_total)
    cum_rate = 0.0
    cum_backlog = 0.0
    need = 0.0
    for priority in PRIORITY_ORDER:
        if only is not None and priority not in only:
            continue
        metrics = snapshot.priorities.get(priority)
        if metrics is None:
            continue
        cum_rate += (metrics.arrival_rate or 0.0) * scale
        cum_backlog += metrics.backlog or 0
        budget = drain_budget_s(metrics, config.latency_target(priority), config.tick_s)
        need = max(need, (cum_rate + cum_backlog / budget) / service_rate)
    return need


def drain_budget_s(metrics: PriorityMetrics, target_s: float, tick_s: float) -> float:
    """Seconds allowed to clear a priority's backlog: half its target, less if already late."""
    budget = 0.5 * target_s
    if metrics.oldest_unacked_age is not None:
        budget = min(budget, target_s - metrics.oldest_unacked_age)
    return max(tick_s, budget)


def served_demand(
    snapshot: Snapshot,
    served: frozenset[Priority],
    service_rate: float,
    config: ScalingConfig,
    predicted_total: float,
) -> float:
    """Demand replicas counting only the arrivals of the priorities still served."""
    scale = _prediction_scale(snapshot, predicted_total)
    rate = sum(
        (m.arrival_rate or 0.0) * scale for p, m in snapshot.priorities.items() if p in served
    )
    return demand_replicas(rate, service_rate, config.target_utilization)


def breached_priorities(
    snapshot: Snapshot, config: ScalingConfig, served: frozenset[Priority]
) -> list[Priority]:
    """Served priorities whose p95 wait (or, without it, oldest message) exceeds the target."""
    late = []
    for priority in PRIORITY_ORDER:
        metrics = snapshot.priorities.get(priority)
        if metrics is None or priority not in served:
            continue
        wait = metrics.p95_wait if metrics.p95_wait is not None else metrics.oldest_unacked_age
        if wait is not None and wait > config.latency_target(priority):
            late.append(priority)
    return late


# --------------------------------------------------------------------------- helpers


def _restored_demand(
    snapshot: Snapshot,
    config: PolicyConfig,
    service_rate: float,
    predicted_total: float,
    level: DegradationLevel,
) -> float:
    """Demand of the next lower level, with the offered (not just accepted) traffic."""
    if level == DegradationLevel.NORMAL:
        return 0.0
    lower = served_priorities(DegradationLevel(level - 1), config.degradation.sheddable)
    scale = _prediction_scale(snapshot, predicted_total)
    rate = 0.0
    for priority, metrics in snapshot.priorities.items():
        if priority not in lower:
            continue
        accepted = (metrics.arrival_rate or 0.0) * scale
        offered = metrics.offered_rate if metrics.offered_rate is not None else 0.0
        rate += max(accepted, offered)
    demand = demand_replicas(rate, service_rate, config.scaling.target_utilization)
    drain = drain_replicas(snapshot, service_rate, config.scaling, predicted_total, only=lower)
    return max(demand, drain)


def _prediction_scale(snapshot: Snapshot, predicted_total: float) -> float:
    """Factor that turns measured per-priority rates into predicted ones."""
    measured = snapshot.total_arrival_rate()
    return predicted_total / measured if measured > 0 else 1.0


def _service_rate(
    snapshot: Snapshot, previous: float | None, config: ScalingConfig
) -> float | None:
    sample = _service_rate_sample(snapshot)
    if sample is None:
        return previous if previous is not None else config.service_rate_hint
    if previous is None:
        return sample
    return (1 - _SERVICE_RATE_ALPHA) * previous + _SERVICE_RATE_ALPHA * sample


def _service_rate_sample(snapshot: Snapshot) -> float | None:
    """Acks per second per ready replica, only when the workers had more than enough work."""
    if snapshot.completion_rate is None or snapshot.ready_replicas <= 0:
        return None
    if snapshot.completion_rate <= 0:
        return None
    if snapshot.waiting is not None:
        saturated = snapshot.waiting > 0
    else:
        saturated = snapshot.total_backlog() >= 2 * snapshot.ready_replicas
    if not saturated:
        return None
    return snapshot.completion_rate / snapshot.ready_replicas


def _apply_bounds(
    current: int, wanted: int, held: int, config: ScalingConfig
) -> tuple[int, Reason, str]:
    """Turn the model's wish into a bounded, stabilised replica count and a reason."""
    if wanted > current:
        target = min(wanted, current + config.max_step)
        bounded = config.bounded(target)
        if bounded <= current:
            return _at_bound(current, wanted, config)
        note = f" (max step {config.max_step})" if target < wanted else ""
        if bounded < target:
            return (
                bounded,
                Reason.AT_MAX_REPLICAS,
                (
                    f"scaling up {current} -> {bounded}: model wants {wanted}, "
                    f"maxReplicas is {config.max_replicas}"
                ),
            )
        return (
            bounded,
            Reason.SCALE_UP,
            f"scaling up {current} -> {bounded}{note}: model wants {wanted}",
        )
    target = config.bounded(max(held, wanted))
    if target < current:
        return (
            target,
            Reason.SCALE_DOWN,
            (
                f"scaling down {current} -> {target}: highest need over the last "
                f"{config.scale_down_stabilization_s:.0f}s is {held}"
            ),
        )
    if current > config.max_replicas or current < config.min_replicas:
        bounded = config.bounded(current)
        return (
            bounded,
            Reason.AT_MAX_REPLICAS if bounded < current else Reason.AT_MIN_REPLICAS,
            (f"bringing {current} replicas within [{config.min_replicas}, {config.max_replicas}]"),
        )
    if wanted < current:
        return (
            current,
            Reason.STABILIZING,
            (
                f"holding {current} replicas: model wants {wanted}, waiting for demand to stay low "
                f"for {config.scale_down_stabilization_s:.0f}s"
            ),
        )
    return current, Reason.STEADY, f"steady at {current} replicas"


def _at_bound(current: int, wanted: int, config: ScalingConfig) -> tuple[int, Reason, str]:
    bounded = config.bounded(current)
    return (
        bounded,
        Reason.AT_MAX_REPLICAS,
        (f"at maxReplicas {config.max_replicas}: model wants {wanted}"),
    )


def _explore(
    snapshot: Snapshot,
    config: PolicyConfig,
    state: ScalingState,
    rate_history: tuple[tuple[float, float], ...],
    predicted: float,
) -> tuple[Decision, ScalingState]:
    """No service rate known yet: grow while there is a backlog, so one can be measured."""
    scaling = config.scaling
    current = snapshot.current_replicas
    if snapshot.total_backlog() > 0:
        wanted = max(1, current * 2)
        replicas, reason, message = _apply_bounds(current, wanted, current, scaling)
        message += " (service rate not measured yet)"
    else:
        replicas = scaling.bounded(current)
        reason, message = Reason.STEADY, f"steady at {replicas} replicas (no backlog, no rate yet)"
    decision = Decision(
        at=snapshot.at,
        replicas=replicas,
        degradation_level=state.degradation.level,
        reason=reason,
        message=message,
        unbounded_replicas=float(replicas),
        predicted_arrival_rate=predicted,
    )
    return decision, ScalingState(
        rate_history=rate_history,
        demand_history=state.demand_history,
        drain_history=state.drain_history,
        service_rate=None,
        last_at=snapshot.at,
        degradation=state.degradation,
    )


def _hold(
    snapshot: Snapshot, state: ScalingState, reason: Reason, message: str, replicas: int
) -> Decision:
    return Decision(
        at=snapshot.at,
        replicas=replicas,
        degradation_level=state.degradation.level,
        reason=reason,
        message=message,
        unbounded_replicas=float(replicas),
        service_rate=state.service_rate,
    )


def _touch(state: ScalingState, at: float) -> ScalingState:
    return ScalingState(
        rate_history=state.rate_history,
        demand_history=state.demand_history,
        drain_history=state.drain_history,
        service_rate=state.service_rate,
        last_at=at,
        degradation=state.degradation,
    )


def _missing_priorities(priorities: Mapping[Priority, PriorityMetrics]) -> list[str]:
    return [p.value for p in PRIORITY_ORDER if p not in priorities or not priorities[p].complete]


def _window(
    samples: tuple[tuple[float, _T], ...], at: float, width_s: float
) -> tuple[tuple[float, _T], ...]:
    """Samples no older than `width_s` before `at` (the newest is always kept)."""
    kept = tuple(s for s in samples if at - s[0] <= width_s + _EPS)
    return kept if kept else samples[-1:]


def _lead(config: ScalingConfig) -> float:
    """How far ahead capacity decided now becomes useful."""
    return config.pod_startup_s + config.tick_s


def _drain_hold_s(config: ScalingConfig) -> float:
    """Keep pods started for a backlog at least until they can have helped."""
    return config.pod_startup_s + 3 * config.tick_s


def _ceil(value: float) -> int:
    return max(0, math.ceil(value - _EPS))
