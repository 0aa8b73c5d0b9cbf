"""Discrete-time run: arrivals -> world (gateway, queues, workers) -> metrics -> policy.

Pure and reproducible: a virtual clock and a seeded RNG; the policies are the same
functions the operator runs, fed the same snapshot each tick (see `world` for what the
snapshot holds and how stale it is).

Per run: a warm-up at the opening load (not measured) lets every policy reach its own
steady state first, so nobody starts from someone else's replica count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from surge_operator.api import Priority
from surge_operator.engine import Autoscaler, run_sync
from surge_operator.policy.baselines import KedaConfig, oracle_replicas
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.engine import EngineConfig, Plan
from surge_operator.policy.select import KedaPolicy, Policy, SurgePolicy
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    Decision,
    DegradationLevel,
    Reason,
    Snapshot,
)
from surge_operator.simulate.traffic import Arrivals
from surge_operator.simulate.world import SimConfig, World, weighted_p95

__all__ = [
    "OraclePolicy",
    "RunResult",
    "Series",
    "SimConfig",
    "keda_policy",
    "run",
    "surge_policy",
    "weighted_p95",
]


@dataclass(frozen=True, slots=True)
class Series:
    """Per-second samples for plots."""

    t: tuple[float, ...]
    arrivals: tuple[float, ...]
    backlog: tuple[float, ...]
    replicas: tuple[int, ...]
    ready: tuple[int, ...]
    level: tuple[int, ...]
    #: (window end, priority) -> p95 wait in that window
    p95: tuple[tuple[float, Mapping[Priority, float]], ...]


@dataclass(frozen=True, slots=True)
class RunResult:
    policy: str
    reaction_s: float | None
    violation_minutes: Mapping[str, float]
    replica_seconds: float
    max_backlog: int
    max_replicas: int
    shed: Mapping[str, int]
    throttled: Mapping[str, int]
    #: Offered messages never served: their clients gave up, or were still retrying at
    #: the end of the run.
    refused: Mapping[str, int]
    accepted: int
    processed: int
    series: Series
    #: Pods asked for over the run (each scale-up's additions): the churn a shorter
    #: hold buys its savings with, which replica-seconds only charge as start-up time.
    pod_starts: int = 0

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def summary(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "reaction_s": self.reaction_s,
            "violation_minutes": dict(self.violation_minutes),
            "replica_seconds": round(self.replica_seconds, 1),
            "max_backlog": self.max_backlog,
            "max_replicas": self.max_replicas,
            "pod_starts": self.pod_starts,
            "shed": dict(self.shed),
            "throttled": dict(self.throttled),
            "refused": self.refused_total,
            "refused_by_priority": dict(self.refused),
            "accepted": self.accepted,
            "processed": self.processed,
        }


def surge_policy() -> Policy[Any]:
    return SurgePolicy()


def keda_policy(config: KedaConfig, *, sync_phase_s: float = 0.0) -> Policy[Any]:
    return KedaPolicy(keda=config, sync_phase_s=sync_phase_s)


class OraclePolicy:
    """Sees the arrivals to come (the same counts the run will feed) and what is queued.
    A look-ahead heuristic, not a bound (see `bound` for the bound)."""

    name = "oracle"

    def __init__(self, config: PolicyConfig, arrivals: Arrivals, sim: SimConfig) -> None:
        self.scaling = config.scaling
        self.arrivals = arrivals
        self.sim = sim
        # A pod asked for now serves from (worst case) this many seconds on.
        self.lead = math.ceil(sim.pod_startup_s * (1 + sim.startup_jitter) + self.scaling.tick_s)
        self.horizon = 5
        #: The world it runs in (set by `run`): it sees what is queued, not just metrics.
        self.world: World | None = None

    def initial_state(self, level: DegradationLevel = DegradationLevel.NORMAL) -> None:
        return None

    def _upcoming(self, second: int) -> dict[Priority, float]:
        """Mean arrival rate per priority over [second, second + horizon)."""
        sums = dict.fromkeys(PRIORITY_ORDER, 0.0)
        for s in range(second, second + self.horizon):
            counts = self._counts(s)
            for p in PRIORITY_ORDER:
                sums[p] += counts.get(p, 0)
        return {p: v / self.horizon for p, v in sums.items()}

    def _counts(self, second: int) -> Mapping[Priority, int]:
        if second < 0:
            return self.arrivals.counts[second % min(30, self.arrivals.duration_s)]
        if second >= self.arrivals.duration_s:
            return {}
        return self.arrivals.counts[second]

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: None
    ) -> tuple[Decision, None]:
        second = round(snapshot.at)
        if self.world is not None:
            backlog = dict(self.world.waiting)
        else:
            backlog = {p: float(m.backlog or 0) for p, m in snapshot.priorities.items()}
        need = 0
        # Keep what the next `lead` seconds need (pods removed now cannot come back sooner).
        for ahead in range(self.lead + 1):
            upcoming = self._upcoming(second + ahead)
            need = max(
                need,
                oracle_replicas(
                    sum(upcoming.values()),
                    backlog if ahead == 0 else {},
                    upcoming,
                    self.sim.service_rate,
                    self.scaling,
                ),
            )
        decision = Decision(
            at=snapshot.at,
            replicas=need,
            degradation_level=DegradationLevel.NORMAL,
            reason=Reason.STEADY,
            message="oracle",
        )
        return decision, None


# --------------------------------------------------------------------------- the engine's edges


class _Source:
    """The simulator's MetricsSource: what the operator would read from JetStream."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def snapshot(self, *, at: float, current_replicas: int, ready_replicas: int) -> Snapshot:
        metrics, acked, pending = self.world.metrics(at)
        return Snapshot(
            at=at,
            observed_at=at,
            priorities=metrics,
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
            completion_rate=acked,
            waiting=pending,
        )


class _Target:
    """The simulator's ScaleTarget: the world's pods."""

    def __init__(self, world: World, clock: _Clock) -> None:
        self.world = world
        self.clock = clock

    async def current(self) -> int:
        return len(self.world.pods)

    async def ready(self) -> int:
        return self.world.ready_count(self.clock.now)

    async def scale(self, replicas: int) -> None:
        self.world.resize(replicas, self.clock.now)


class _Publisher:
    """The simulator's LevelPublisher: the gateway and workers of the world."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def publish(self, plan: Plan) -> None:
        self.world.level = plan.level


@dataclass(slots=True)
class _Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- the run


def run(
    arrivals: Arrivals, decider: Policy[Any], sim: SimConfig, policy: PolicyConfig
) -> RunResult:
    """Feed `arrivals` through the world, with the engine running `decider` (the same
    `Autoscaler` and `step` the operator runs), and measure what happened."""
    steps = max(1, round(1 / sim.dt))
    dt = 1.0 / steps
    targets = policy.scaling.latency_targets
    world = World(sim, policy.degradation.sheddable)

    opening = arrivals.counts[: min(30, arrivals.duration_s)]
    opening_rate = sum(sum(c.values()) for c in opening) / max(1, len(opening))
    initial = policy.scaling.bounded(math.ceil(opening_rate / sim.service_rate))
    world.pods = [world.new_pod(0.0, ready=True) for _ in range(initial)]
    if isinstance(decider, OraclePolicy):
        decider.world = world
    clock = _Clock()
    autoscaler = Autoscaler(
        _Source(world),
        _Target(world, clock),
        _Publisher(world),
        EngineConfig(policy=policy, decider=decider),
        clock,
        keep_ticks=False,
    )

    # Reaction is timed from the surge's known onset: the first scale-up decided at or
    # after it, whatever caused it.
    onset = arrivals.surge_onset()
    first_scale_up: float | None = None
    replica_seconds = 0.0
    max_backlog = 0
    max_replicas = 0
    pod_starts = 0
    window_start = 0.0
    window_end = sim.window_s
    violations = dict.fromkeys(PRIORITY_ORDER, 0)
    series_t: list[float] = []
    series_arrivals: list[float] = []
    series_backlog: list[float] = []
    series_replicas: list[int] = []
    series_ready: list[int] = []
    series_level: list[int] = []
    series_p95: list[tuple[float, Mapping[Priority, float]]] = []

    for second in range(-sim.warmup_s, arrivals.duration_s):
        measuring = second >= 0
        counts = arrivals.counts[second] if measuring else opening[second % len(opening)]
        per_step = {p: counts.get(p, 0) / steps for p in PRIORITY_ORDER}
        for step in range(steps):
            world.step(per_step, second + step * dt, dt, measuring)
            if measuring:
                replica_seconds += len(world.pods) * dt

        tick_at = float(second + 1)
        if measuring and tick_at >= window_end - 1e-9:
            p95s = {}
            for p in PRIORITY_ORDER:
                value = weighted_p95(world.window_samples(p, window_start, tick_at))
                if value is not None:
                    p95s[p] = value
                    if value > targets.get(p, math.inf):
                        violations[p] += 1
            series_p95.append((tick_at, p95s))
            window_start = tick_at
            window_end += sim.window_s
        elif not measuring:
            window_start = tick_at

        clock.now = tick_at
        tick = run_sync(autoscaler.tick())
        ready = tick.ready
        target = tick.plan.replicas
        before = tick.plan.current_replicas
        if measuring:
            if first_scale_up is None and target > before and tick_at >= onset:
                first_scale_up = tick_at
            total_backlog = round(sum(world.backlog(p) for p in PRIORITY_ORDER))
            max_backlog = max(max_backlog, total_backlog)
            max_replicas = max(max_replicas, len(world.pods))
            pod_starts += max(0, target - before)
            series_t.append(tick_at)
            series_arrivals.append(sum(counts.values()))
            series_backlog.append(total_backlog)
            series_replicas.append(len(world.pods))
            series_ready.append(ready)
            series_level.append(int(world.level))

    reaction = None if first_scale_up is None else max(0.0, first_scale_up - onset)
    retrying = world.pending_retries()
    refused = {p: world.tally.gave_up[p] + retrying[p] for p in PRIORITY_ORDER}
    # Work left queued at the end, and work refused and never served, is charged at the
    # cheapest price (fully busy replicas): no policy looks cheap by leaving work undone.
    unserved = sum(world.backlog(p) for p in PRIORITY_ORDER) + sum(refused.values())
    replica_seconds += unserved / sim.service_rate
    minutes = {p.value: round(violations[p] * sim.window_s / 60, 2) for p in PRIORITY_ORDER}
    minutes["total"] = round(sum(minutes.values()), 2)
    tally = world.tally
    return RunResult(
        policy=decider.name,
        reaction_s=reaction,
        violation_minutes=minutes,
        replica_seconds=replica_seconds,
        max_backlog=max_backlog,
        max_replicas=max_replicas,
        pod_starts=pod_starts,
        shed={p.value: round(v) for p, v in tally.shed.items()},
        throttled={p.value: round(v) for p, v in tally.throttled.items()},
        refused={p.value: round(v) for p, v in refused.items()},
        accepted=round(tally.accepted),
        processed=round(tally.processed),
        series=Series(
            t=tuple(series_t),
            arrivals=tuple(series_arrivals),
            backlog=tuple(series_backlog),
            replicas=tuple(series_replicas),
            ready=tuple(series_ready),
            level=tuple(series_level),
            p95=tuple(series_p95),
        ),
    )
