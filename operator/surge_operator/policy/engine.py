"""The one autoscaling step: (snapshot, config, state) -> plan. Pure.

The operator, `surge demo` and the simulator all call `step` (through the driver in
`surge_operator.engine`), whichever decision function `spec.autoscaling.policy` names:

    config = EngineConfig(policy=PolicyConfig.from_spec(spec), decider=policy_for(spec))
    state = initial_state(config)
    plan, state = step(snapshot, config, state)      # every tick

A plan says what to do and what to tell: the replicas to ask for, the degradation level
to publish, the figures for status, the events to emit and, per priority, the forecast
of the wait a message arriving now will see (published with the level every tick, for
the composer's promises to customers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from surge_operator.api import Priority
from surge_operator.drain import DrainMemory, remember
from surge_operator.forecast import forecast_of
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.select import Policy, SurgePolicy
from surge_operator.policy.types import Decision, DegradationLevel, Snapshot
from surge_workers.eta import ClassForecast


class EventKind(StrEnum):
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    DEGRADATION_RAISED = "DegradationRaised"
    DEGRADATION_LOWERED = "DegradationLowered"


@dataclass(frozen=True, slots=True)
class EngineEvent:
    kind: EventKind
    message: str

    @property
    def warning(self) -> bool:
        return self.kind is EventKind.DEGRADATION_RAISED


@dataclass(frozen=True, slots=True)
class StatusFigures:
    """What status shows for this tick (None: not known this tick)."""

    desired_replicas: int
    backlog: int | None
    arrival_rate: float | None
    p95_wait: float | None


@dataclass(frozen=True, slots=True)
class EngineConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    #: The decision function (`spec.autoscaling.policy`): Surge, KEDA+HPA, or in the
    #: simulator the look-ahead oracle.
    decider: Policy[Any] = field(default_factory=SurgePolicy)


@dataclass(frozen=True, slots=True)
class EngineState:
    policy_state: Any
    #: The level last planned (what workers and the gateway were told).
    level: DegradationLevel = DegradationLevel.NORMAL
    #: Measured drain per priority, for the forecast.
    drain: DrainMemory | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    decision: Decision
    current_replicas: int
    level: DegradationLevel
    previous_level: DegradationLevel
    figures: StatusFigures
    events: tuple[EngineEvent, ...]
    #: Per priority, what the wait of a message arriving now is computed from (queue
    #: ahead, capacity now and once started replicas are ready, share at this level):
    #: published with the level every tick (`surge_operator.forecast`).
    expected_wait: Mapping[Priority, ClassForecast]

    @property
    def replicas(self) -> int:
        return self.decision.replicas

    @property
    def scales(self) -> bool:
        return self.decision.replicas != self.current_replicas

    @property
    def level_changed(self) -> bool:
        return self.level != self.previous_level


def initial_state(
    config: EngineConfig, level: DegradationLevel = DegradationLevel.NORMAL
) -> EngineState:
    """Fresh memory; `level` carries a degradation level over an operator restart."""
    return EngineState(policy_state=config.decider.initial_state(level), level=level)


def step(snapshot: Snapshot, config: EngineConfig, state: EngineState) -> tuple[Plan, EngineState]:
    """One tick (pure)."""
    decision, policy_state = config.decider.decide(snapshot, config.policy, state.policy_state)
    level = (
        decision.degradation_level
        if config.policy.degradation.enabled
        else (DegradationLevel.NORMAL)
    )
    current = snapshot.current_replicas
    events: list[EngineEvent] = []
    if decision.replicas != current:
        kind = EventKind.SCALED_UP if decision.replicas > current else EventKind.SCALED_DOWN
        events.append(
            EngineEvent(kind, f"Workers {current} -> {decision.replicas}: {decision.message}")
        )
    if level != state.level:
        kind = (
            EventKind.DEGRADATION_RAISED if level > state.level else EventKind.DEGRADATION_LOWERED
        )
        events.append(
            EngineEvent(
                kind,
                f"Degradation level {int(state.level)} -> {int(level)}: {decision.message}",
            )
        )
    drain = remember(state.drain, snapshot) if snapshot.priorities else state.drain
    plan = Plan(
        decision=decision,
        current_replicas=current,
        level=level,
        previous_level=state.level,
        figures=_figures(snapshot, decision),
        events=tuple(events),
        expected_wait=forecast_of(snapshot, decision, config.policy, level=int(level), drain=drain)
        if snapshot.priorities
        else MappingProxyType({}),
    )
    return plan, EngineState(policy_state=policy_state, level=level, drain=drain)


def _figures(snapshot: Snapshot, decision: Decision) -> StatusFigures:
    if not snapshot.priorities:
        return StatusFigures(decision.replicas, None, None, None)
    return StatusFigures(
        desired_replicas=decision.replicas,
        backlog=snapshot.total_backlog(),
        arrival_rate=snapshot.total_arrival_rate(),
        p95_wait=_p95(snapshot),
    )


def _p95(snapshot: Snapshot) -> float:
    """Prometheus p95 when known, else the oldest unacked message's age (an upper bound
    on the wait of everything queued, which is what the latency targets protect)."""
    waits = [m.p95_wait for m in snapshot.priorities.values() if m.p95_wait is not None]
    if waits:
        return max(waits)
    ages = [m.oldest_unacked_age for m in snapshot.priorities.values() if m.oldest_unacked_age]
    return max(ages) if ages else 0.0
