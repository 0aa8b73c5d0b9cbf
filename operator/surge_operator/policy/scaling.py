"""The Surge scaling policy: a snapshot in, desired replicas and a degradation level out.

Model, per tick:

* arrival rate: a robust line through the last `trend_window_s` of samples (Theil-Sen),
  giving a low-noise *level*; a sample far above it (beyond the measured noise, Poisson
  at least) is a step and is taken as the new level at once; a significant rise seen in
  both halves of the window is a ramp and is extrapolated over the time a new pod needs
  to become useful;
* service rate per replica, measured, never handed in: while the workers are saturated
  (messages wait that no worker has pulled) and the pool is unchanged, it is ack progress
  per ready replica; while they keep up, Little's law gives the time a message spends
  with a worker (ack-pending / ack rate), and a replica's `concurrency` handlers serve
  concurrency / that time per second. Smoothed; the spec's hint (if any) only until the
  first measurement;
* pod start-up time, measured too: from each scale-up to the ready count rising
  (first in, first out), smoothed; the spec's `podStartupSeconds` only as the prior;
* demand: in service order, the replicas that serve the predicted arrivals of each class
  and every class served before it. A class whose latency target is shorter than the
  time new capacity takes to arrive (start-up + tick) is planned at `target_utilization`:
  its headroom must be there before a rise is even seen. A class with a longer target
  rides out an unpredicted rise in its queue until new pods are ready, so it is planned
  at full utilisation (with priority service, that is what keeps a lean pool safe: bulk
  absorbs the noise, the drain term below restores any class that falls behind);
* drain: the replicas that serve those arrivals *and* clear each class's backlog (and
  the backlog of everything served before it) within half its latency target, sooner
  when its oldest message is already close to the target;
* scale up at once to max(demand, drain), by at most `max_step`; scale down only as far
  as the *sustained* demand over the stabilisation window allows (the robust level with
  a noise margin, before a single sample is taken for a step): never below today's
  demand, and never below the pool that would keep every class within its drain budget
  if the window's peak came back now. A class that can queue rides out such a return in
  its queue until the pods asked for then are ready (`return_demand_replicas`); a class
  whose target is shorter than that keeps the peak's headroom. Predictions, step samples
  and drain peaks are held only while the pods they asked for start: they do not come
  back by themselves;
* hold the current size when metrics are missing or stale, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from surge_operator.api import Priority
from surge_operator.policy.config import PolicyConfig, ScalingConfig
from surge_operator.policy.degradation import (
    DegradationInputs,
    next_degradation,
    protected_priorities,
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

    startup_s = _startup_estimate(snapshot, state, scaling)
    scaling = replace(scaling, pod_startup_s=startup_s)
    config = replace(config, scaling=scaling)
    service_rate = _service_rate(snapshot, state, scaling)
    rate_history = _window(
        (*state.rate_history, (snapshot.at, snapshot.total_arrival_rate())),
        snapshot.at,
        scaling.trend_window_s,
    )
    estimate = estimate_arrival_rate(
        rate_history, snapshot.at, lead_s=_lead(scaling), tick_s=scaling.tick_s
    )
    predicted = estimate.predicted

    if service_rate is None:
        return _explore(snapshot, config, state, rate_history, predicted)

    level = state.degradation.level
    served = served_priorities(level, config.degradation.sheddable)
    upcoming = _scaled_rates(snapshot, estimate.predicted)
    demand = demand_replicas(upcoming, service_rate, scaling, only=served)
    drain = drain_replicas(snapshot, upcoming, service_rate, scaling, only=served)
    restored = _restored_demand(snapshot, config, service_rate, upcoming, level)

    # The stabilisation window remembers *sustained* demand (the robust level): what may
    # come back. The prediction, a one-sample step and the backlog drain are transient by
    # nature, so they are only held while the pods they asked for start (no scale-up
    # undone at once). Remembering a burst sample for the whole window held a pool sized
    # for that one second (seen in `surge bench autoscale --live`: 8 workers for 30 s).
    sustained = _scaled_rates(snapshot, estimate.sustained)
    # Never shrink to within a few per cent of today's sustained demand: a pool sized
    # exactly on a replica boundary went down when the window let it and back up at the
    # next one-second rise (found by hypothesis in a steady, noisy load).
    measured = _ceil(demand_replicas(sustained, service_rate, scaling) * (1 + _DOWN_TOLERANCE))
    # What the window holds of a past level is what its return would need: classes that
    # can queue ride it out until replacement pods are ready. Holding the full peak for
    # 30 s was most of Surge's cost above the LP bound (bursts of seconds to tens of
    # seconds put the window's peak well above the mean), for no wait it protected.
    returning = _ceil(return_demand_replicas(sustained, service_rate, scaling))
    transient = _ceil(max(demand, drain))
    demand_history = _window(
        (*state.demand_history, (snapshot.at, returning)),
        snapshot.at,
        scaling.scale_down_stabilization_s,
    )
    drain_history = _window(
        (*state.drain_history, (snapshot.at, transient)),
        snapshot.at,
        min(scaling.scale_down_stabilization_s, _drain_hold_s(scaling)),
    )
    wanted = transient
    held = max(measured, max(r for _, r in demand_history), max(r for _, r in drain_history))

    replicas, reason, message = _apply_bounds(current, wanted, held, scaling)

    protected_demand, protected_history = _protected_demand(
        snapshot, state, config, service_rate, level
    )
    degradation = next_degradation(
        state.degradation,
        # Degradation looks at sustained demand (arrivals), not at backlogs: a backlog
        # drains with time, and a class paused at a higher level always has one, which
        # must not keep the level up forever. Only the protected classes count: a
        # sheddable flood queues behind them. Latency counts for critical, the class
        # degradation exists to protect.
        DegradationInputs(
            demand_replicas=protected_demand,
            restored_demand_replicas=restored,
            max_replicas=scaling.max_replicas,
            ready_replicas=snapshot.ready_replicas,
            latency_breached=bool(
                breached_priorities(snapshot, scaling, frozenset({Priority.CRITICAL}))
            ),
        ),
        config.degradation,
        snapshot.at,
    )
    if degradation.level != level:
        verb = "raised" if degradation.level > level else "lowered"
        message += f"; degradation {verb} to {degradation.level.value} ({degradation.level.name})"

    starting = _starting_after(snapshot, state, replicas)
    decision = Decision(
        at=snapshot.at,
        replicas=replicas,
        degradation_level=degradation.level,
        reason=reason,
        message=message,
        unbounded_replicas=max(demand, drain),
        predicted_arrival_rate=predicted,
        service_rate=service_rate,
        startup_s=_startup_bound(snapshot.at, startup_s, starting),
    )
    new_state = ScalingState(
        # A level change changes what the gateway accepts: samples from before it describe
        # traffic no longer admitted (or no longer refused). Kept, a class just shed still
        # counted in the level the served classes were scaled to, five times their real
        # demand in bulk-flood, and that alone raised the level to 3 and throttled normal.
        rate_history=rate_history if degradation.level == level else (),
        protected_history=protected_history if degradation.level == level else (),
        demand_history=demand_history,
        drain_history=drain_history,
        service_rate=service_rate,
        last_at=snapshot.at,
        last_ready=snapshot.ready_replicas,
        degradation=degradation,
        startup_s=startup_s,
        starting=starting,
    )
    return decision, new_state


# --------------------------------------------------------------------------- model pieces


@dataclass(frozen=True, slots=True)
class RateEstimate:
    """Arrival rate now (`level`, smoothed) and once new capacity is ready (`predicted`)."""

    level: float
    predicted: float
    #: The robust level plus two standard errors, before a sample far above it is taken
    #: for a step: what the stabilisation window remembers. A step is acted on at once
    #: (`level`), but remembered only once later samples confirm it (the median follows).
    sustained: float = 0.0


#: A sample this many Poisson deviations above the level is a step, not noise.
_STEP_SIGMAS = 4.0
#: A pool shrinks only to this much above its sustained demand (a scale-down deadband).
_DOWN_TOLERANCE = 0.03
#: A slope (per second) below this many sample deviations is noise, not a ramp.
_TREND_SIGMAS = 0.5


def estimate_arrival_rate(
    history: Iterable[tuple[float, float]], at: float, *, lead_s: float, tick_s: float = 1.0
) -> RateEstimate:
    """Level and `lead_s`-ahead prediction of the total arrival rate (pure)."""
    points = list(history)
    if not points:
        return RateEstimate(0.0, 0.0, 0.0)
    last = max(0.0, points[-1][1])
    if len(points) < 4:
        return RateEstimate(last, last, last)
    slope = 0.0
    if len(points) >= 6:
        # A trend counts only when both halves of the window rise: a step (an outage
        # released, a flood switched on) must not be extrapolated into a huge overshoot.
        half = len(points) // 2
        slope = max(0.0, min(_theil_sen(points[:half]), _theil_sen(points[half:])))
    level = max(0.0, _median([r + slope * (at - t) for t, r in points]))
    noise = _noise(points, at, level, slope, tick_s)
    if slope < _TREND_SIGMAS * noise:
        # A rise within the noise is not a trend: extrapolating it would add and then
        # remove a replica now and again under perfectly steady load.
        slope = 0.0
        level = max(0.0, _median([r for _, r in points]))
    # Two standard errors above the robust level: a dip within the noise is never taken
    # for lower demand (and undone a few seconds later).
    sustained = level + 2 * noise / math.sqrt(len(points))
    if last > level + _STEP_SIGMAS * noise:
        level = last
    return RateEstimate(level=level, predicted=level + slope * lead_s, sustained=sustained)


def _noise(
    points: list[tuple[float, float]], at: float, level: float, slope: float, tick_s: float
) -> float:
    """Spread of one rate sample: Poisson at least, more when traffic is burstier than
    that (robust: 1.4826 x the median absolute deviation from the fitted line)."""
    poisson = math.sqrt(max(level, 1.0) / tick_s)
    residuals = [r - (level - slope * (at - t)) for t, r in points]
    centre = _median(residuals)
    spread = 1.4826 * _median([abs(x - centre) for x in residuals])
    return max(poisson, spread)


def predict_arrival_rate(
    history: Iterable[tuple[float, float]], at: float, *, lead_s: float, tick_s: float = 1.0
) -> float:
    """The arrival rate expected `lead_s` after `at` (see `estimate_arrival_rate`)."""
    return estimate_arrival_rate(history, at, lead_s=lead_s, tick_s=tick_s).predicted


def _theil_sen(points: list[tuple[float, float]]) -> float:
    return _median(
        [
            (r2 - r1) / (t2 - t1)
            for i, (t1, r1) in enumerate(points)
            for t2, r2 in points[i + 1 :]
            if t2 > t1
        ]
    )


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return 0.5 * (ordered[mid - 1] + ordered[mid])


def class_utilization(config: ScalingConfig, priority: Priority) -> float:
    """How full the pool may run for this class: the target utilisation for classes whose
    latency target is within the time new capacity takes to arrive, 1 for classes that can
    absorb a shortfall in their queue until it does."""
    if config.latency_target(priority) <= _lead(config):
        return config.target_utilization
    return 1.0


def demand_replicas(
    rates: Mapping[Priority, float],
    service_rate: float,
    config: ScalingConfig,
    *,
    only: frozenset[Priority] | None = None,
) -> float:
    """Replicas to serve `rates`: in service order, each class and all before it at that
    class's utilisation; the tightest class decides."""
    cum_rate = 0.0
    need = 0.0
    for priority in PRIORITY_ORDER:
        if only is not None and priority not in only:
            continue
        cum_rate += rates.get(priority, 0.0)
        need = max(need, cum_rate / (service_rate * class_utilization(config, priority)))
    return need


def return_demand_replicas(
    rates: Mapping[Priority, float], service_rate: float, config: ScalingConfig
) -> float:
    """Replicas that keep every class within its drain budget if arrivals jump back to
    `rates` right after a scale-down, until the pods asked for then are ready (pure).

    In service order, class k waits behind the cumulative rate R of itself and every
    class served first. With capacity C short of R for the `_return_s` seconds a return
    takes to be seen and answered with ready pods, the newest of k's messages has waited
    L (R / C - 1) when they arrive; keeping that within its drain budget b (half its
    target) needs C >= R L / (L + b). A class whose target is within the time new
    capacity takes to arrive cannot ride anything out: it keeps its headroom
    (`demand_replicas`). Never more than `demand_replicas` of the same rates.
    """
    lead = _return_s(config)
    cum_rate = 0.0
    need = 0.0
    for priority in PRIORITY_ORDER:
        cum_rate += rates.get(priority, 0.0)
        utilization = class_utilization(config, priority)
        if utilization < 1.0:
            share = 1.0 / utilization
        else:
            budget = max(config.tick_s, 0.5 * config.latency_target(priority))
            share = lead / (lead + budget)
        need = max(need, cum_rate * share / service_rate)
    return need


def drain_replicas(
    snapshot: Snapshot,
    rates: Mapping[Priority, float],
    service_rate: float,
    config: ScalingConfig,
    *,
    only: frozenset[Priority] | None = None,
) -> float:
    """Replicas to keep every priority's wait under its target, in service order.

    The backlog is pending + ack-pending; the part handlers are on is not waiting.
    Workers serve critical first, so priority k waits for the backlog of every class up to
    and including k, while those classes keep arriving. The worst k decides.
    """
    cum_rate = 0.0
    cum_backlog = 0.0
    need = 0.0
    for priority in PRIORITY_ORDER:
        if only is not None and priority not in only:
            continue
        metrics = snapshot.priorities.get(priority)
        if metrics is None:
            continue
        rate = rates.get(priority, 0.0)
        cum_rate += rate
        # Messages a handler is already on are not waiting: about rate x handling time of
        # the backlog (Little's law) is in service, the rest queues.
        handling_s = config.concurrency / service_rate
        cum_backlog += max(0.0, (metrics.backlog or 0) - rate * handling_s)
        budget = drain_budget_s(metrics, config.latency_target(priority), config.tick_s)
        need = max(need, (cum_rate + cum_backlog / budget) / service_rate)
    return need


def drain_budget_s(metrics: PriorityMetrics, target_s: float, tick_s: float) -> float:
    """Seconds allowed to clear a priority's backlog: half its target, less if already late."""
    budget = 0.5 * target_s
    if metrics.oldest_unacked_age is not None:
        budget = min(budget, target_s - metrics.oldest_unacked_age)
    return max(tick_s, budget)


def breached_priorities(
    snapshot: Snapshot, config: ScalingConfig, served: frozenset[Priority]
) -> list[Priority]:
    """Served priorities whose wait exceeds the target *now*: the oldest unacked
    message is over it and, when Prometheus is configured, so is the p95. The p95 covers
    the last scrape range (a minute, scraped every 15 s), so on its own it still reports
    a breach long after the queue has recovered; acting on that alone raised the level
    (and refused work) for a queue that was already fine."""
    late = []
    for priority in PRIORITY_ORDER:
        metrics = snapshot.priorities.get(priority)
        if metrics is None or priority not in served:
            continue
        target = config.latency_target(priority)
        waits = [w for w in (metrics.p95_wait, metrics.oldest_unacked_age) if w is not None]
        if waits and min(waits) > target:
            late.append(priority)
    return late


# --------------------------------------------------------------------------- helpers


def _protected_demand(
    snapshot: Snapshot,
    state: ScalingState,
    config: PolicyConfig,
    service_rate: float,
    level: DegradationLevel,
) -> tuple[float, tuple[tuple[float, float], ...]]:
    """Replicas the protected classes served at `level` need, from their own arrival
    trend, and that trend's samples to remember.

    Scaled from the total's trend by the last sample's mix, the end of a bulk flood read
    as an overload: the total's robust level still held the flood while the mix was
    already critical and normal, and that alone raised the level."""
    scaling = config.scaling
    protected = protected_priorities(level, config.degradation.sheddable)
    history = _window(
        (*state.protected_history, (snapshot.at, _arrivals_of(snapshot, protected))),
        snapshot.at,
        scaling.trend_window_s,
    )
    estimate = estimate_arrival_rate(
        history, snapshot.at, lead_s=_lead(scaling), tick_s=scaling.tick_s
    )
    rates = _scaled_rates(snapshot, estimate.predicted, only=protected)
    return demand_replicas(rates, service_rate, scaling, only=protected), history


def _restored_demand(
    snapshot: Snapshot,
    config: PolicyConfig,
    service_rate: float,
    upcoming: Mapping[Priority, float],
    level: DegradationLevel,
) -> float:
    """Arrival demand of the next lower level's protected classes, with the offered (not
    just accepted) traffic: what leaving the current level would bring back."""
    if level == DegradationLevel.NORMAL:
        return 0.0
    lower = protected_priorities(DegradationLevel(level - 1), config.degradation.sheddable)
    rates = {}
    for priority in lower:
        metrics = snapshot.priorities.get(priority)
        offered = metrics.offered_rate if metrics and metrics.offered_rate is not None else 0.0
        rates[priority] = max(upcoming.get(priority, 0.0), offered)
    return demand_replicas(rates, service_rate, config.scaling, only=lower)


def _scaled_rates(
    snapshot: Snapshot, total: float, *, only: frozenset[Priority] | None = None
) -> dict[Priority, float]:
    """Per-priority rates (of `only`, default all) scaled so they sum to `total`
    (keeping the measured mix)."""
    measured = snapshot.total_arrival_rate() if only is None else _arrivals_of(snapshot, only)
    factor = total / measured if measured > 0 else 0.0
    return {
        p: (m.arrival_rate or 0.0) * factor
        for p, m in snapshot.priorities.items()
        if only is None or p in only
    }


def _arrivals_of(snapshot: Snapshot, priorities: frozenset[Priority]) -> float:
    return sum(m.arrival_rate or 0.0 for p, m in snapshot.priorities.items() if p in priorities)


def _service_rate(snapshot: Snapshot, state: ScalingState, config: ScalingConfig) -> float | None:
    previous = state.service_rate
    sample = None
    # Pods that became ready mid-interval, or workers told to leave a priority alone
    # while degraded, make completions understate capacity: measure only without either.
    steady_pool = state.last_ready == snapshot.ready_replicas
    if steady_pool and state.degradation.level == DegradationLevel.NORMAL:
        sample = _service_rate_sample(snapshot, config.concurrency)
    if sample is None:
        return previous if previous is not None else config.service_rate_hint
    if previous is None:
        return sample
    return (1 - _SERVICE_RATE_ALPHA) * previous + _SERVICE_RATE_ALPHA * sample


def _service_rate_sample(snapshot: Snapshot, concurrency: int) -> float | None:
    """Capacity per ready replica: acks per replica when the workers had more than enough
    work; otherwise `concurrency` over the time a message spends with a worker."""
    completions = snapshot.completion_rate
    if completions is None or snapshot.ready_replicas <= 0 or completions < 1.0:
        return None
    observed = completions / snapshot.ready_replicas
    if snapshot.waiting is None:
        saturated = snapshot.total_backlog() >= 2 * snapshot.ready_replicas
        return observed if saturated else None
    if snapshot.waiting > 0:
        return observed
    # Little's law: ack-pending = ack rate x time with a worker. Prefetched messages
    # count as with a worker too, so this errs low (more replicas), never high. It needs
    # the *mean* in flight, which one read only gives when enough messages are in flight:
    # with a handful, one read is mostly 0, 1 or 2 and the estimate jumps several-fold
    # (seen in `surge bench autoscale --live`). Below one worker's handlers, no sample.
    in_flight = snapshot.total_backlog() - snapshot.waiting
    if in_flight < max(1, concurrency):
        return None
    return max(observed, concurrency * completions / in_flight)


#: Weight of a new start-up sample in the smoothed estimate.
_STARTUP_ALPHA = 0.3


def _startup_estimate(snapshot: Snapshot, state: ScalingState, config: ScalingConfig) -> float:
    """Seconds from asking for a replica to it being ready: the spec's value as a prior,
    then what this pool showed (oldest request first, half a tick of sampling removed)."""
    estimate = state.startup_s if state.startup_s is not None else config.pod_startup_s
    risen = snapshot.ready_replicas - (state.last_ready or 0)
    if state.last_ready is None or risen <= 0:
        return estimate
    for asked_at in state.starting[:risen]:
        sample = max(0.0, snapshot.at - asked_at - 0.5 * config.tick_s)
        estimate = (1 - _STARTUP_ALPHA) * estimate + _STARTUP_ALPHA * sample
    return estimate


def _startup_bound(at: float, estimate: float, starting: tuple[float, ...]) -> float:
    """The start-up to expect now: the estimate only learns when a replica becomes ready,
    so a replica that has been starting for longer already proves it too short (a slow
    node or image pull, a loaded machine) before any sample says so."""
    return max(estimate, at - starting[0]) if starting else estimate


def _starting_after(snapshot: Snapshot, state: ScalingState, replicas: int) -> tuple[float, ...]:
    """Request times of replicas asked for and not ready yet, after this tick's decision."""
    risen = max(0, snapshot.ready_replicas - (state.last_ready or 0))
    starting = list(state.starting[risen:] if state.last_ready is not None else ())
    current = snapshot.current_replicas
    if replicas > current:
        starting += [snapshot.at] * (replicas - current)
    elif replicas < current:
        # Scale-down removes replicas still starting first.
        del starting[max(0, len(starting) - (current - replicas)) :]
    # Never more pending requests than replicas not ready.
    room = max(0, max(replicas, current) - snapshot.ready_replicas)
    return tuple(starting[-room:]) if room else ()


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
                f"scaling down {current} -> {target}: the last "
                f"{config.scale_down_stabilization_s:.0f}s need {held}"
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
    # Messages no worker has pulled mean the pool is short; in-flight work alone does not.
    short = snapshot.waiting > 0 if snapshot.waiting is not None else snapshot.total_backlog() > 0
    if short:
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
        protected_history=state.protected_history,
        demand_history=state.demand_history,
        drain_history=state.drain_history,
        service_rate=None,
        last_at=snapshot.at,
        last_ready=snapshot.ready_replicas,
        degradation=state.degradation,
        startup_s=state.startup_s,
        starting=_starting_after(snapshot, state, replicas),
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
        protected_history=state.protected_history,
        demand_history=state.demand_history,
        drain_history=state.drain_history,
        service_rate=state.service_rate,
        last_at=at,
        last_ready=state.last_ready,
        degradation=state.degradation,
        startup_s=state.startup_s,
        starting=state.starting,
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


def _return_s(config: ScalingConfig) -> float:
    """Seconds from a return of past demand to ready pods for it: half the trend window
    for the level to follow (a step is seen in one tick), then a pod's start-up."""
    return _lead(config) + 0.5 * config.trend_window_s


def _drain_hold_s(config: ScalingConfig) -> float:
    """Keep pods started for a backlog at least until they can have helped."""
    return config.pod_startup_s + 3 * config.tick_s


def _ceil(value: float) -> int:
    return max(0, math.ceil(value - _EPS))
