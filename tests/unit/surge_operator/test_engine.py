"""The one engine: the observe -> step -> act loop with fake Protocols, and the pure step."""

from __future__ import annotations

import pytest

from surge_operator.api import Priority
from surge_operator.engine import Autoscaler, run_sync
from surge_operator.forecast import forecast_of
from surge_operator.policy import DegradationLevel, PolicyConfig, PriorityMetrics, Reason, Snapshot
from surge_operator.policy.engine import EngineConfig, EventKind, Plan, initial_state, step
from surge_operator.policy.select import KedaPolicy


class FakeSource:
    def __init__(self, rate: float, backlog: int = 0) -> None:
        self.rate = rate
        self.backlog = backlog

    async def snapshot(self, *, at: float, current_replicas: int, ready_replicas: int) -> Snapshot:
        return Snapshot(
            at=at,
            observed_at=at,
            priorities={
                p: PriorityMetrics(backlog=self.backlog // 3, arrival_rate=self.rate / 3)
                for p in Priority
            },
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
        )


class FakeTarget:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.calls: list[int] = []

    async def current(self) -> int:
        return self.replicas

    async def ready(self) -> int:
        return self.replicas

    async def scale(self, replicas: int) -> None:
        self.calls.append(replicas)
        self.replicas = replicas


async def test_a_surge_scales_the_target_and_publishes_degradation_when_maxed() -> None:
    clock = iter(float(t) for t in range(100))
    target = FakeTarget(2)
    published: list[DegradationLevel] = []

    class Publisher:
        async def publish(self, plan: Plan) -> None:
            if plan.level_changed:
                published.append(plan.level)

    config = PolicyConfig().with_scaling(service_rate_hint=10.0, max_replicas=8, max_step=4)
    loop = Autoscaler(
        FakeSource(rate=1000.0, backlog=3000),
        target,
        Publisher(),
        EngineConfig(policy=config),
        clock=lambda: float(next(clock)),
    )
    first = await loop.tick()
    assert first.decision.reason is Reason.SCALE_UP
    assert target.calls == [6]
    for _ in range(6):
        await loop.tick()
    assert target.replicas == 8
    assert published[:2] == [DegradationLevel.THROTTLE_BULK, DegradationLevel.SHED_BULK]


async def test_steady_load_leaves_the_target_alone() -> None:
    clock = iter(float(t) for t in range(100))
    target = FakeTarget(2)
    config = PolicyConfig().with_scaling(service_rate_hint=50.0)
    loop = Autoscaler(
        FakeSource(rate=100.0), target, None, EngineConfig(policy=config), lambda: next(clock)
    )
    for _ in range(10):
        await loop.tick()
    assert target.calls == []


def _snap(at: float, backlog: int, ready: int = 2) -> Snapshot:
    return Snapshot(
        at=at,
        observed_at=at,
        priorities={p: PriorityMetrics(backlog=backlog, arrival_rate=10.0) for p in Priority},
        current_replicas=ready,
        ready_replicas=ready,
        completion_rate=30.0,
        waiting=3 * backlog,
    )


def test_the_plan_carries_events_figures_and_expected_waits() -> None:
    config = EngineConfig(policy=PolicyConfig().with_scaling(service_rate_hint=10.0))
    plan, state = step(_snap(1.0, backlog=100), config, initial_state(config))
    assert plan.scales
    assert plan.events[0].kind is EventKind.SCALED_UP
    assert plan.figures.backlog == 300
    assert plan.figures.desired_replicas == plan.replicas
    # The forecast the composer promises waits from: the same as the operator publishes.
    expected = forecast_of(_snap(1.0, backlog=100), plan.decision, config.policy, level=0)
    assert dict(plan.expected_wait) == dict(expected)
    assert set(plan.expected_wait) == set(Priority)
    assert state.level == plan.level


def test_a_plan_without_metrics_promises_nothing() -> None:
    config = EngineConfig()
    empty = Snapshot(at=1.0, observed_at=1.0, priorities={}, current_replicas=1, ready_replicas=1)
    plan, _ = step(empty, config, initial_state(config))
    assert not plan.expected_wait
    assert plan.figures.backlog is None


def test_the_decider_is_whatever_the_config_names() -> None:
    keda = EngineConfig(decider=KedaPolicy())
    plan, _ = step(_snap(1.0, backlog=100), keda, initial_state(keda))
    # KEDA's default lagThreshold 10: ceil(100 / 10) = 10, rate-limited to 2 + 4.
    assert plan.replicas == 6
    assert plan.level is DegradationLevel.NORMAL
    assert "HPA" in plan.decision.message


def test_run_sync_refuses_a_coroutine_that_suspends() -> None:
    class Suspend:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield None

    async def waits_for_io() -> None:
        await Suspend()

    with pytest.raises(RuntimeError, match="suspended"):
        run_sync(waits_for_io())
