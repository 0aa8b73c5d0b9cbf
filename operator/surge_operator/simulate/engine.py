"""Discrete-time queueing simulation: arrivals -> queues -> workers -> metrics -> policy.

Pure and reproducible: a virtual clock and a seeded RNG; the policies are the same
functions the operator runs. Messages are a fluid (fractional counts grouped in arrival
cohorts), which keeps queue waits exact enough while a run over a simulated day takes
well under a second.

Per run: a warm-up at the opening load (not measured) lets every policy reach its own
steady state first, so nobody starts from someone else's replica count.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from surge_operator.api import Priority
from surge_operator.policy.baselines import KedaConfig, KedaState, keda_decide, oracle_replicas
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.scaling import decide
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    DegradationLevel,
    PriorityMetrics,
    ScalingState,
    Snapshot,
)
from surge_operator.simulate.effects import admission, worker_share
from surge_operator.simulate.traffic import Arrivals

#: Arrivals this far above ready capacity mean the surge has outgrown the pool.
_OUTGROWN = 1.1


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The world the policies run in (not the policies' own settings)."""

    service_rate: float = 50.0
    #: Standard deviation of a pod's speed relative to the nominal service rate.
    service_jitter: float = 0.1
    pod_startup_s: float = 5.0
    #: Start-up time varies uniformly by this fraction either way.
    startup_jitter: float = 0.2
    dt: float = 0.25
    warmup_s: int = 180
    #: Width of the windows p95 wait is judged over (violation time is counted in these).
    window_s: float = 10.0
    seed: int = 1


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
    accepted: int
    processed: int
    series: Series

    def summary(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "reaction_s": self.reaction_s,
            "violation_minutes": dict(self.violation_minutes),
            "replica_seconds": round(self.replica_seconds, 1),
            "max_backlog": self.max_backlog,
            "max_replicas": self.max_replicas,
            "shed": dict(self.shed),
            "throttled": dict(self.throttled),
            "accepted": self.accepted,
            "processed": self.processed,
        }


class Controller(Protocol):
    """A scaling policy as the simulator drives it: one call per tick."""

    name: str

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]: ...


# --------------------------------------------------------------------------- controllers


class SurgeController:
    name = "surge"

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.state = ScalingState()

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
        decision, self.state = decide(snapshot, self.config, self.state)
        return decision.replicas, decision.degradation_level


class KedaController:
    name = "keda"

    def __init__(self, config: KedaConfig, *, sync_phase_s: float = 0.0) -> None:
        """`sync_phase_s`: where in its 15 s cycle the HPA controller is when the run
        starts (it is not synchronised with anyone's traffic)."""
        self.config = config
        self.state = KedaState(last_sync=-math.inf if sync_phase_s <= 0 else None)
        self._phase = sync_phase_s

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
        if self.state.last_sync is None:
            # First call: pretend the previous sync happened `phase` seconds ago.
            self.state = KedaState(last_sync=snapshot.at - self._phase)
        decision, self.state = keda_decide(snapshot, self.config, self.state)
        return decision.replicas, DegradationLevel.NORMAL


class OracleController:
    """Sees the arrivals to come (the same counts the run will feed)."""

    name = "oracle"

    def __init__(self, config: PolicyConfig, arrivals: Arrivals, sim: SimConfig) -> None:
        self.scaling = config.scaling
        self.arrivals = arrivals
        self.sim = sim
        # A pod asked for now serves from (worst case) this many seconds on.
        self.lead = math.ceil(sim.pod_startup_s * (1 + sim.startup_jitter) + self.scaling.tick_s)
        self.horizon = 5

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

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
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
        return need, DegradationLevel.NORMAL


# --------------------------------------------------------------------------- the world


@dataclass(slots=True)
class _Pod:
    ready_at: float
    speed: float


@dataclass(slots=True)
class _Window:
    waits: dict[Priority, list[tuple[float, float]]] = field(
        default_factory=lambda: {p: [] for p in PRIORITY_ORDER}
    )


def weighted_p95(samples: list[tuple[float, float]]) -> float | None:
    """95th percentile of (value, weight) samples."""
    total = sum(w for _, w in samples)
    if total <= 1e-9:
        return None
    running = 0.0
    for value, weight in sorted(samples):
        running += weight
        if running >= 0.95 * total:
            return value
    return samples[-1][0]


def run(
    arrivals: Arrivals, controller: Controller, sim: SimConfig, policy: PolicyConfig
) -> RunResult:
    """Feed `arrivals` through the world under `controller` and measure what happened."""
    rng = random.Random(sim.seed)
    steps = max(1, round(1 / sim.dt))
    dt = 1.0 / steps
    targets = policy.scaling.latency_targets
    sheddable = policy.degradation.sheddable
    queues: dict[Priority, deque[list[float]]] = {p: deque() for p in PRIORITY_ORDER}
    backlog = dict.fromkeys(PRIORITY_ORDER, 0.0)

    def new_pod(now: float) -> _Pod:
        startup = sim.pod_startup_s * (1 + rng.uniform(-sim.startup_jitter, sim.startup_jitter))
        return _Pod(ready_at=now + startup, speed=max(0.5, rng.gauss(1.0, sim.service_jitter)))

    opening = arrivals.counts[: min(30, arrivals.duration_s)]
    opening_rate = sum(sum(c.values()) for c in opening) / max(1, len(opening))
    initial = policy.scaling.bounded(math.ceil(opening_rate / sim.service_rate))
    pods = [
        _Pod(ready_at=-math.inf, speed=max(0.5, rng.gauss(1.0, sim.service_jitter)))
        for _ in range(initial)
    ]
    level = DegradationLevel.NORMAL

    onset = arrivals.onset_s()
    # Reaction is timed from when the surge outgrew the pool serving it (arrivals over the
    # last 5 s more than 10 % above the ready capacity: a real shortfall, not noise around
    # a pool run lean on purpose); scaling up before then (from 15 s before the onset,
    # i.e. anticipating it) counts as 0.
    outgrown_at: float | None = None
    first_scale_up: float | None = None
    last_target = len(pods)
    replica_seconds = 0.0
    max_backlog = 0
    max_replicas = 0
    shed = dict.fromkeys(PRIORITY_ORDER, 0.0)
    throttled = dict.fromkeys(PRIORITY_ORDER, 0.0)
    accepted_total = 0.0
    processed_total = 0.0
    window = _Window()
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
        accepted_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        offered_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        served_sec = 0.0
        shares = {p: worker_share(level, p, sheddable) for p in PRIORITY_ORDER}
        for step in range(steps):
            now = second + step * dt
            for p in PRIORITY_ORDER:
                offered = counts.get(p, 0) / steps
                if offered <= 0:
                    continue
                offered_sec[p] += offered
                accept, throttling = admission(level, p, sheddable)
                took = offered * accept
                if measuring and offered > took:
                    (throttled if throttling else shed)[p] += offered - took
                if took > 0:
                    queues[p].append([now, took])
                    backlog[p] += took
                    accepted_sec[p] += took
            ready_speed = sum(pod.speed for pod in pods if pod.ready_at <= now)
            full = ready_speed * sim.service_rate * dt
            capacity = full
            for p in PRIORITY_ORDER:
                if capacity <= 1e-12:
                    break
                allowed = min(capacity, full * shares[p])
                if allowed <= 1e-12:
                    continue
                left, done = _serve(queues[p], allowed, now, window.waits[p])
                capacity -= allowed - left
                backlog[p] -= done
                served_sec += done
            if measuring:
                replica_seconds += len(pods) * dt
        if measuring and outgrown_at is None and second >= onset:
            recent = [arrivals.total(s) for s in range(max(0, second - 4), second + 1)]
            if sum(recent) / len(recent) > _OUTGROWN * ready_speed * sim.service_rate:
                outgrown_at = float(second)
        if measuring:
            accepted_total += sum(accepted_sec.values())
            processed_total += served_sec

        tick_at = float(second + 1)
        if measuring and tick_at >= window_end - 1e-9:
            p95s = {}
            for p in PRIORITY_ORDER:
                samples = window.waits[p] + [(tick_at - c[0], c[1]) for c in queues[p]]
                value = weighted_p95(samples)
                if value is not None:
                    p95s[p] = value
                    if value > targets.get(p, math.inf):
                        violations[p] += 1
            series_p95.append((tick_at, p95s))
            window = _Window()
            window_end += sim.window_s
        elif not measuring:
            window = _Window()

        ready = sum(1 for pod in pods if pod.ready_at <= tick_at)
        snapshot = Snapshot(
            at=tick_at,
            observed_at=tick_at,
            priorities={
                p: PriorityMetrics(
                    backlog=round(backlog[p]),
                    arrival_rate=accepted_sec[p],
                    oldest_unacked_age=(tick_at - queues[p][0][0]) if queues[p] else 0.0,
                    offered_rate=offered_sec[p],
                )
                for p in PRIORITY_ORDER
            },
            current_replicas=len(pods),
            ready_replicas=ready,
            completion_rate=served_sec,
            waiting=round(sum(backlog.values())),
        )
        target, level = controller.tick(snapshot, second + 1)
        if target > len(pods):
            pods.extend(new_pod(tick_at) for _ in range(target - len(pods)))
        elif target < len(pods):
            # Remove pods still starting first: they serve nobody yet.
            pods.sort(key=lambda pod: pod.ready_at)
            del pods[target:]
        if measuring:
            if first_scale_up is None and target > last_target and tick_at >= onset - 15:
                first_scale_up = tick_at
            total_backlog = round(sum(backlog.values()))
            max_backlog = max(max_backlog, total_backlog)
            max_replicas = max(max_replicas, len(pods))
            series_t.append(tick_at)
            series_arrivals.append(sum(counts.values()))
            series_backlog.append(sum(backlog.values()))
            series_replicas.append(len(pods))
            series_ready.append(ready)
            series_level.append(int(level))
        last_target = target

    if outgrown_at is None:
        reaction: float | None = 0.0
    elif first_scale_up is None:
        reaction = None
    else:
        reaction = max(0.0, first_scale_up - outgrown_at)
    # Work still queued at the end is charged at the cheapest price (fully busy replicas),
    # so a policy cannot look cheap by leaving its backlog for after the run.
    replica_seconds += sum(backlog.values()) / sim.service_rate
    minutes = {p.value: round(violations[p] * sim.window_s / 60, 2) for p in PRIORITY_ORDER}
    minutes["total"] = round(sum(minutes.values()), 2)
    return RunResult(
        policy=controller.name,
        reaction_s=reaction,
        violation_minutes=minutes,
        replica_seconds=replica_seconds,
        max_backlog=max_backlog,
        max_replicas=max_replicas,
        shed={p.value: round(v) for p, v in shed.items()},
        throttled={p.value: round(v) for p, v in throttled.items()},
        accepted=round(accepted_total),
        processed=round(processed_total),
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


def _serve(
    queue: deque[list[float]], capacity: float, done_at: float, waits: list[tuple[float, float]]
) -> tuple[float, float]:
    """Serve up to `capacity` messages from the front; returns (capacity left, served)."""
    served = 0.0
    while capacity > 1e-12 and queue:
        cohort = queue[0]
        take = min(cohort[1], capacity)
        waits.append((max(0.0, done_at - cohort[0]), take))
        cohort[1] -= take
        capacity -= take
        served += take
        if cohort[1] <= 1e-9:
            queue.popleft()
    return capacity, served
