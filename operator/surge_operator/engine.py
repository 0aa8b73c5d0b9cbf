"""The one autoscaling loop: measure -> `policy.engine.step` -> scale -> publish.

The operator (per MessagingCluster), `surge demo` (local worker processes) and the
simulator (a virtual world) each plug in one implementation of the three Protocols below
and run the same `Autoscaler`. It imports no I/O framework and no clock: the simulator
drives it without an event loop (`run_sync`), the others await it.

    autoscaler = Autoscaler(source, target, publisher, EngineConfig(...), clock)
    tick = await autoscaler.tick()            # or: plan = await autoscaler.plan(); ...
                                              #     await autoscaler.apply(plan)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from surge_operator.policy.engine import (
    EngineConfig,
    EngineState,
    Plan,
    initial_state,
    step,
)
from surge_operator.policy.types import Decision, DegradationLevel, Snapshot

T = TypeVar("T")


class MetricsSource(Protocol):
    """Anything that yields one Snapshot per tick (JetStream, the simulator, a fake)."""

    async def snapshot(
        self, *, at: float, current_replicas: int, ready_replicas: int
    ) -> Snapshot: ...


class ScaleTarget(Protocol):
    """Something with a replica count the engine can read and set."""

    async def current(self) -> int:
        """Replicas asked for (running or starting)."""
        ...

    async def ready(self) -> int:
        """Replicas that serve traffic now."""
        ...

    async def scale(self, replicas: int) -> None:
        """Ask for `replicas`; returns once the request is made, not when it is done."""
        ...


class LevelPublisher(Protocol):
    """Tells workers, the gateway and the composer what the plan says: the degradation
    level (at least whenever `plan.level_changed`) and, every tick, the plan's expected
    wait per priority."""

    async def publish(self, plan: Plan) -> None: ...


@dataclass(frozen=True, slots=True)
class Tick:
    snapshot: Snapshot
    plan: Plan
    ready: int

    @property
    def decision(self) -> Decision:
        return self.plan.decision


@dataclass
class Autoscaler:
    source: MetricsSource
    target: ScaleTarget
    publisher: LevelPublisher | None
    config: EngineConfig
    clock: Callable[[], float]
    state: EngineState | None = None
    ticks: list[Tick] = field(default_factory=list)
    keep_ticks: bool = True

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = initial_state(self.config)

    @property
    def level(self) -> DegradationLevel:
        assert self.state is not None
        return self.state.level

    async def plan(self) -> Tick:
        """Measure and decide; nothing is changed yet."""
        current = await self.target.current()
        ready = await self.target.ready()
        snapshot = await self.source.snapshot(
            at=self.clock(), current_replicas=current, ready_replicas=ready
        )
        assert self.state is not None
        plan, self.state = step(snapshot, self.config, self.state)
        return Tick(snapshot=snapshot, plan=plan, ready=ready)

    async def scale(self, tick: Tick) -> None:
        """Ask the target for the planned replicas (if they differ)."""
        if tick.plan.scales:
            await self.target.scale(tick.plan.replicas)

    async def publish(self, tick: Tick) -> None:
        """Hand the plan to the publisher (every tick: the expected waits change)."""
        if self.publisher is not None:
            await self.publisher.publish(tick.plan)

    async def apply(self, tick: Tick) -> None:
        """Scale and publish what `plan` decided."""
        await self.scale(tick)
        await self.publish(tick)
        if self.keep_ticks:
            self.ticks.append(tick)

    async def tick(self) -> Tick:
        tick = await self.plan()
        await self.apply(tick)
        return tick


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the simulator's Protocols do no I/O)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("run_sync: the coroutine suspended (it awaited real I/O)")
