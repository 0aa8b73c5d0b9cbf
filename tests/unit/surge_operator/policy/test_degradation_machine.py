"""The degradation state machine: enters after sustained overload, leaves after sustained
recovery, one level at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surge_operator.api import Priority
from surge_operator.policy import DegradationConfig, DegradationLevel, DegradationState
from surge_operator.policy.degradation import (
    DegradationInputs,
    next_degradation,
    served_priorities,
)
from surge_workers import contract

CONFIG = DegradationConfig(enter_after_s=3.0, exit_after_s=30.0)
OVERLOAD = DegradationInputs(
    demand_replicas=80,
    restored_demand_replicas=80,
    max_replicas=40,
    ready_replicas=40,
    latency_breached=False,
)
CALM = DegradationInputs(
    demand_replicas=10,
    restored_demand_replicas=10,
    max_replicas=40,
    ready_replicas=10,
    latency_breached=False,
)


def walk(
    inputs: DegradationInputs, start: DegradationState, t0: float, seconds: int
) -> list[DegradationLevel]:
    state, levels = start, []
    for t in range(seconds):
        state = next_degradation(state, inputs, CONFIG, t0 + t)
        levels.append(state.level)
    return levels


def test_overload_raises_one_level_per_enter_delay_up_to_the_max() -> None:
    levels = walk(OVERLOAD, DegradationState(), 0.0, 12)
    assert levels[:3] == [DegradationLevel.NORMAL] * 3
    assert levels[3] is DegradationLevel.THROTTLE_BULK
    assert levels[-1] is DegradationLevel.CRITICAL_ONLY


def test_a_blip_shorter_than_the_enter_delay_changes_nothing() -> None:
    state = DegradationState()
    for t in range(2):
        state = next_degradation(state, OVERLOAD, CONFIG, float(t))
    state = next_degradation(state, CALM, CONFIG, 2.0)
    assert state.level is DegradationLevel.NORMAL
    assert state.pressure_since is None


def test_recovery_lowers_one_level_only_after_the_exit_delay() -> None:
    start = DegradationState(level=DegradationLevel.SHED_BULK)
    levels = walk(CALM, start, 100.0, 65)
    assert levels[29] is DegradationLevel.SHED_BULK
    assert levels[30] is DegradationLevel.THROTTLE_BULK
    assert levels[-1] is DegradationLevel.NORMAL


def test_shedding_that_hides_the_overload_is_not_recovery() -> None:
    # Accepted traffic fits, but the traffic being shed would bring the overload back.
    hidden = DegradationInputs(
        demand_replicas=20,
        restored_demand_replicas=70,
        max_replicas=40,
        ready_replicas=40,
        latency_breached=False,
    )
    levels = walk(hidden, DegradationState(level=DegradationLevel.THROTTLE_BULK), 0.0, 120)
    assert set(levels) == {DegradationLevel.THROTTLE_BULK}


def test_latency_breach_at_max_size_counts_as_overload() -> None:
    breach = DegradationInputs(
        demand_replicas=30,
        restored_demand_replicas=30,
        max_replicas=40,
        ready_replicas=40,
        latency_breached=True,
    )
    assert walk(breach, DegradationState(), 0.0, 5)[-1] is DegradationLevel.THROTTLE_BULK


def test_disabled_or_capped_degradation_is_respected() -> None:
    capped = DegradationConfig(max_level=1)
    state = DegradationState()
    for t in range(30):
        state = next_degradation(state, OVERLOAD, capped, float(t))
    assert state.level is DegradationLevel.THROTTLE_BULK
    off = DegradationConfig(enabled=False)
    assert next_degradation(state, OVERLOAD, off, 31.0).level is DegradationLevel.NORMAL


def test_served_priorities_follow_the_levels() -> None:
    shed = frozenset({Priority.BULK})
    assert served_priorities(DegradationLevel.THROTTLE_BULK, shed) == frozenset(Priority)
    assert Priority.BULK not in served_priorities(DegradationLevel.SHED_BULK, shed)
    # level 3 protects critical, but normal (not sheddable) is still served after it
    assert served_priorities(DegradationLevel.CRITICAL_ONLY, shed) == {
        Priority.CRITICAL,
        Priority.NORMAL,
    }
    both = frozenset({Priority.NORMAL, Priority.BULK})
    assert served_priorities(DegradationLevel.CRITICAL_ONLY, both) == {Priority.CRITICAL}
    # critical is what the levels protect: never dropped, even if a spec marks it
    assert Priority.CRITICAL in served_priorities(
        DegradationLevel.CRITICAL_ONLY, frozenset(Priority)
    )


@pytest.mark.parametrize("level", list(DegradationLevel))
@given(sheddable=st.frozensets(st.sampled_from(list(Priority))))
def test_served_priorities_are_what_the_workers_pull(
    level: DegradationLevel, sheddable: frozenset[Priority]
) -> None:
    """The policy's demand model and the data plane agree on who consumes capacity."""
    wire = frozenset(contract.Priority(p.value) for p in sheddable)
    pulled = {
        p
        for p in Priority
        if contract.worker_share(
            contract.DegradationLevel(int(level)), contract.Priority(p.value), wire
        )
        > 0
    }
    assert served_priorities(level, sheddable) == pulled


def test_shedding_and_throttling_at_the_top_level_is_not_recovery() -> None:
    # At level 3 the gateway throttles normal, so its accepted rate (and the served demand)
    # fits; the offered rate level 2 would let back in does not: the level holds.
    throttled = DegradationInputs(
        demand_replicas=15,
        restored_demand_replicas=55,
        max_replicas=40,
        ready_replicas=40,
        latency_breached=False,
    )
    levels = walk(throttled, DegradationState(level=DegradationLevel.CRITICAL_ONLY), 0.0, 120)
    assert set(levels) == {DegradationLevel.CRITICAL_ONLY}
