"""The autoscaling loop: observe -> decide -> act, once per tick.

The same pieces the operator wires into a kopf timer: a `MetricsSource`, the pure
`decide`, a `ScaleTarget`, and the degradation level published in the KV bucket the
workers and the gateway watch.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from surge_operator.metrics_source import MetricsSource
from surge_operator.policy import (
    Decision,
    DegradationLevel,
    PolicyConfig,
    ScalingState,
    Snapshot,
    decide,
)
from surge_operator.scale_target import ScaleTarget

log = structlog.get_logger("surge.autoscale")

PublishLevel = Callable[[DegradationLevel, str], Awaitable[None]]
#: Each tick, the expected wait per priority beside the level (see surge_operator.forecast).
PublishForecast = Callable[[Snapshot, Decision], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Tick:
    snapshot: Snapshot
    decision: Decision
    ready: int


@dataclass
class Autoscaler:
    source: MetricsSource
    target: ScaleTarget
    config: PolicyConfig
    publish_level: PublishLevel | None = None
    publish_forecast: PublishForecast | None = None
    clock: Callable[[], float] = time.monotonic
    state: ScalingState = field(default_factory=ScalingState)
    ticks: list[Tick] = field(default_factory=list)
    level: DegradationLevel = DegradationLevel.NORMAL

    async def tick(self) -> Tick:
        current = await self.target.current()
        ready = await self.target.ready()
        snapshot = await self.source.snapshot(
            at=self.clock(), current_replicas=current, ready_replicas=ready
        )
        decision, self.state = decide(snapshot, self.config, self.state)
        bound = log.bind(tick=len(self.ticks), replicas=current, desired=decision.replicas)
        if decision.replicas != current:
            await self.target.scale(decision.replicas)
            bound.info("scaled", reason=decision.reason.value, message=decision.message)
        if decision.degradation_level != self.level:
            bound.info("degradation", level=int(decision.degradation_level))
            if self.publish_level is not None:
                await self.publish_level(decision.degradation_level, decision.message)
            self.level = decision.degradation_level
        if self.publish_forecast is not None:
            await self.publish_forecast(snapshot, decision)
        tick = Tick(snapshot=snapshot, decision=decision, ready=ready)
        self.ticks.append(tick)
        return tick
