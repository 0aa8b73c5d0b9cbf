"""Degradation level state machine with hysteresis.

    0 NORMAL         everything accepted and served
    1 THROTTLE_BULK  the gateway answers part of the sheddable traffic with 429
    2 SHED_BULK      sheddable traffic rejected and not served; non-essential features off
    3 CRITICAL_ONLY  critical first, with the workers' slots reserved for it; classes that
                     are not sheddable are throttled at the gateway and held to a bounded
                     share of the workers, but still served; sheddable ones stay shed

"Sheddable" is the MessagingCluster's `priorities[].sheddable` (bulk by default); critical
is never shed. The data plane applies the same tables (`surge_workers.contract`).

The level rises one step after overload has lasted `enter_after_s` (and again after each
further `enter_after_s`), and falls one step only after the demand that the lower level
would bring back has fitted under the maximum for `exit_after_s`. Overload is judged on
the classes degradation protects (`protected_priorities`): a sheddable class beyond the
largest pool waits in the stream behind them and never raises the level by itself.
Comparing against the *restored* demand (offered rates of what is being shed) is what
keeps the level from flapping: shedding removes the overload, which must not count as
recovery by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from surge_operator.api import Priority
from surge_operator.policy.config import DegradationConfig
from surge_operator.policy.types import DegradationLevel, DegradationState


def served_priorities(
    level: DegradationLevel, sheddable: frozenset[Priority]
) -> frozenset[Priority]:
    """The priorities workers still serve at `level`: those that consume capacity.

    Sheddable classes stop from level 2. At level 3 the others are throttled and held to a
    bounded share, but they are still served (after critical), so they still count.
    """
    every = frozenset(Priority)
    if level <= DegradationLevel.THROTTLE_BULK:
        return every
    return every - (sheddable - {Priority.CRITICAL})


def protected_priorities(
    level: DegradationLevel, sheddable: frozenset[Priority]
) -> frozenset[Priority]:
    """The served priorities that may not be shed: the ones degradation protects, and so
    the only ones whose demand moves the level.

    A sheddable class never raises the level by itself. Workers pull in strict priority,
    with critical on credits of its own, so a flood of bulk beyond the largest pool waits
    in the durable stream behind the other classes without delaying them; refusing it
    would only turn queued work into client retries (`surge bench autoscale`:
    bulk-flood-critical-spike, the same violation minutes for critical and normal either
    way, and 0.72 M messages refused when bulk raised the level).
    """
    return served_priorities(level, sheddable) - (sheddable - {Priority.CRITICAL})


@dataclass(frozen=True, slots=True)
class DegradationInputs:
    """What the machine looks at, computed by the scaling policy each tick.

    `demand_replicas` is the replicas needed for the protected classes served at the
    current level (`protected_priorities`); `restored_demand_replicas` the replicas the
    next lower level's protected classes would need, with the traffic it would stop
    throttling added back.
    """

    demand_replicas: float
    restored_demand_replicas: float
    max_replicas: int
    ready_replicas: int
    latency_breached: bool


def is_overloaded(inputs: DegradationInputs) -> bool:
    """More demand than the largest pool serves, or targets missed with the pool at max."""
    if inputs.demand_replicas > inputs.max_replicas:
        return True
    return inputs.latency_breached and inputs.ready_replicas >= inputs.max_replicas


def has_recovered(inputs: DegradationInputs, config: DegradationConfig) -> bool:
    fits = inputs.restored_demand_replicas <= config.exit_headroom * inputs.max_replicas
    return fits and not inputs.latency_breached


def next_degradation(
    state: DegradationState, inputs: DegradationInputs, config: DegradationConfig, at: float
) -> DegradationState:
    """The degradation state after this tick (pure; `at` is the decision time)."""
    if not config.enabled or config.max_level <= 0:
        return DegradationState()
    top = DegradationLevel(min(config.max_level, DegradationLevel.CRITICAL_ONLY))
    level = min(state.level, top)
    if is_overloaded(inputs):
        since = state.pressure_since if state.pressure_since is not None else at
        if level < top and at - since >= config.enter_after_s:
            # Restart the clock so each further step needs its own sustained overload.
            return DegradationState(level=DegradationLevel(level + 1), pressure_since=at)
        return DegradationState(level=DegradationLevel(level), pressure_since=since)
    if level > DegradationLevel.NORMAL and has_recovered(inputs, config):
        since = state.recovery_since if state.recovery_since is not None else at
        if at - since >= config.exit_after_s:
            return DegradationState(level=DegradationLevel(level - 1), recovery_since=at)
        return DegradationState(level=DegradationLevel(level), recovery_since=since)
    return replace(state, level=DegradationLevel(level), pressure_since=None, recovery_since=None)
