"""The expected wait per priority, from one tick's snapshot and decision (pure).

Published beside the degradation level (key ``eta`` of the degradation bucket) by the
operator's tick and by `surge demo`, read by the composer to tell each new conversation
how long it should wait. The model (:mod:`surge_workers.eta`): the pool serves at the
measured per-replica service rate times the ready replicas, and at the replica count the
loop is heading for (the model's unbounded demand within min/max), ``max_step`` more each
tick from the first step's start-up on (``pod_startup_s``): replicas come up in the steps
they are asked for in, not all when the last one is ready; classes are
served in priority order, so a class waits for the backlog of every class before it and
loses the capacity that the classes before it keep arriving with; the level caps each
class's share of the pool (0: not served, no promise). The start-up time is the one the
autoscaler measured (:attr:`Decision.startup_s`); ready replicas x concurrency messages
run side by side, so the first of them do not hold a newcomer up, less the handlers that
the main pool's classes hold from critical (:func:`~surge_workers.eta.held_share`, from
the snapshot's backlogs and the level's shares); and a class is never
promised a slower drain than the snapshots measured (:mod:`surge_operator.drain`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from surge_operator.drain import DrainMemory, position_rate
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.types import Decision, Snapshot
from surge_workers import contract
from surge_workers.eta import ClassForecast, Forecast, forecast_classes


def wait_forecast(
    snapshot: Snapshot,
    decision: Decision,
    config: PolicyConfig,
    at: float,
    *,
    level: int | None = None,
    drain: DrainMemory | None = None,
) -> Forecast:
    """The forecast to publish at wall-clock ``at`` (unix seconds); ``level`` is the level
    actually published (the decision's unless degradation is disabled)."""
    published = int(decision.degradation_level) if level is None else level
    return Forecast(
        at=at,
        level=published,
        classes=forecast_of(snapshot, decision, config, level=published, drain=drain),
    )


def forecast_of(
    snapshot: Snapshot,
    decision: Decision,
    config: PolicyConfig,
    *,
    level: int,
    drain: DrainMemory | None = None,
) -> Mapping[contract.Priority, ClassForecast]:
    """Per priority, what a new message's wait is computed from (the engine's plan
    carries it; publishers stamp it with their wall clock)."""

    scaling = config.scaling
    per_replica = decision.service_rate or scaling.service_rate_hint or 0.0
    ready = max(0, snapshot.ready_replicas)
    # Where the loop is heading, not just this tick's step: the model's own replica count
    # (bounded), reached max_step replicas per tick, each ready after pod_startup_s.
    heading = scaling.bounded(max(decision.replicas, math.ceil(decision.unbounded_replicas)))
    starting = heading > ready
    steps = math.ceil((heading - ready) / scaling.max_step) if starting else 0
    # The autoscaler's measured start-up (the spec's value until it has seen one).
    startup_s = decision.startup_s if decision.startup_s is not None else scaling.pod_startup_s
    later_in_s = (steps - 1) * scaling.tick_s + startup_s if starting else 0.0
    level_now = contract.DegradationLevel(level)
    sheddable = frozenset(contract.Priority(p.value) for p in config.degradation.sheddable)
    backlog: dict[contract.Priority, int] = {}
    rates: dict[contract.Priority, float] = {}
    for priority, metrics in snapshot.priorities.items():
        key = contract.Priority(priority.value)
        backlog[key] = metrics.backlog or 0
        rates[key] = metrics.arrival_rate or 0.0
    return forecast_classes(
        backlog=backlog,
        arrival_rate=rates,
        capacity=per_replica * ready,
        capacity_later=per_replica * heading if starting else 0.0,
        later_in_s=later_in_s,
        shares={p: contract.worker_share(level_now, p, sheddable) for p in contract.PRIORITIES},
        drain_rates={p: position_rate(drain, p) for p in contract.PRIORITIES},
        ready=ready,
        concurrency=scaling.concurrency,
        step_replicas=scaling.max_step,
        step_s=scaling.tick_s,
    )
