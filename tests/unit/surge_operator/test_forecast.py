"""The expected wait the control loop publishes each tick, from its snapshot and decision."""

from __future__ import annotations

from dataclasses import replace

import pytest

from surge_operator.api import Priority
from surge_operator.forecast import wait_forecast
from surge_operator.policy import PolicyConfig
from surge_operator.policy.types import (
    Decision,
    DegradationLevel,
    PriorityMetrics,
    Reason,
    Snapshot,
)
from surge_workers import contract


def snapshot(ready: int = 2) -> Snapshot:
    return Snapshot(
        at=10.0,
        observed_at=10.0,
        priorities={
            Priority.CRITICAL: PriorityMetrics(backlog=10, arrival_rate=5.0),
            Priority.NORMAL: PriorityMetrics(backlog=90, arrival_rate=20.0),
            Priority.BULK: PriorityMetrics(backlog=200, arrival_rate=10.0),
        },
        current_replicas=ready,
        ready_replicas=ready,
    )


def decision(replicas: int = 2, level: DegradationLevel = DegradationLevel.NORMAL) -> Decision:
    return Decision(
        at=10.0,
        replicas=replicas,
        degradation_level=level,
        reason=Reason.STEADY,
        message="",
        service_rate=25.0,
    )


def test_each_class_waits_for_everything_served_before_it_at_the_pool_rate() -> None:
    forecast = wait_forecast(snapshot(), decision(), PolicyConfig(), at=1000.0)
    normal = forecast.classes[contract.Priority.NORMAL]
    assert normal.ahead == 100
    assert normal.capacity == 50.0
    assert normal.higher_rate == 5.0  # critical keeps arriving and goes first
    # 2 ready replicas x 16 handlers: the first 32 ahead run beside a newcomer; the other
    # 69 drain at 50 - 5 msg/s, then its own 16 / 25 s with a worker.
    assert normal.ready == 2
    assert normal.wait_s == pytest.approx(69 / 45 + 16 / 25, abs=1e-3)
    assert forecast.at == 1000.0


def test_the_start_up_the_autoscaler_measured_wins_over_the_spec() -> None:
    config = PolicyConfig()
    measured = replace(decision(replicas=6), startup_s=12.0)
    bulk = wait_forecast(snapshot(ready=2), measured, config, at=0.0).classes[
        contract.Priority.BULK
    ]
    assert bulk.later_in_s == 12.0
    assert config.scaling.pod_startup_s != 12.0


def test_replicas_being_started_count_after_their_start_up() -> None:
    config = PolicyConfig()
    forecast = wait_forecast(snapshot(ready=2), decision(replicas=6), config, at=0.0)
    bulk = forecast.classes[contract.Priority.BULK]
    assert bulk.capacity_later == 150.0
    assert bulk.later_in_s == config.scaling.pod_startup_s
    # Asked for max_step replicas per tick: they come up in those steps.
    assert (bulk.step_replicas, bulk.step_s) == (config.scaling.max_step, config.scaling.tick_s)
    steady = wait_forecast(snapshot(ready=2), decision(replicas=2), config, at=0.0)
    assert bulk.wait_s is not None
    assert steady.classes[contract.Priority.BULK].wait_s is not None
    assert bulk.wait_s < steady.classes[contract.Priority.BULK].wait_s


def test_at_level_2_bulk_is_not_served_and_gets_no_promise() -> None:
    forecast = wait_forecast(
        snapshot(), decision(level=DegradationLevel.SHED_BULK), PolicyConfig(), at=0.0
    )
    assert forecast.level == 2
    assert forecast.classes[contract.Priority.BULK].wait_s is None
    assert forecast.classes[contract.Priority.NORMAL].wait_s is not None


def test_the_published_level_wins_over_the_decision_when_degradation_is_off() -> None:
    forecast = wait_forecast(
        snapshot(), decision(level=DegradationLevel.SHED_BULK), PolicyConfig(), at=0.0, level=0
    )
    assert forecast.level == 0
    assert forecast.classes[contract.Priority.BULK].wait_s is not None
