"""The observe -> decide -> act loop with a fake MetricsSource and ScaleTarget."""

from __future__ import annotations

from surge_operator.api import Priority
from surge_operator.demo.loop import Autoscaler
from surge_operator.policy import DegradationLevel, PolicyConfig, PriorityMetrics, Reason, Snapshot


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

    async def publish(level: DegradationLevel, reason: str) -> None:
        published.append(level)

    config = PolicyConfig().with_scaling(service_rate_hint=10.0, max_replicas=8, max_step=4)
    loop = Autoscaler(
        FakeSource(rate=1000.0, backlog=3000), target, config, publish, clock=lambda: next(clock)
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
    loop = Autoscaler(FakeSource(rate=100.0), target, config, clock=lambda: next(clock))
    for _ in range(10):
        await loop.tick()
    assert target.calls == []
