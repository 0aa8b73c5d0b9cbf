"""How fast each priority's queue is measurably drained (pure, smoothed tick to tick).

The forecast's model rate (per-replica service rate x ready replicas, capped by the
level's share) can be stale: the scaling policy stops sampling the service rate while
degraded (shed classes make completions understate capacity), so a rate learned in the
worst seconds of a surge would stay for the whole degraded spell, and the share cap says
what a worker may hold, not how fast a held message finishes. What the queue really did
is in the snapshots: a class's throughput is its arrivals minus the growth of its backlog,

    served_p = arrival_rate_p - (backlog_p(now) - backlog_p(before)) / dt

smoothed with a half-life of one tick: a sample is one tick of Poisson arrivals, so some
smoothing is needed, but the rate a waiting message will see is the one of the next few
seconds, and a longer memory (3 s before) lagged whenever the pool changed pace (replicas
becoming ready, a level shedding or restoring a class). The forecast promises no slower
than that (:func:`position_rate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from surge_operator.policy.types import Snapshot
from surge_workers.contract import PRIORITIES, Priority

#: Seconds for a sample's weight to halve in the smoothed rates: one default tick
#: (chosen on recorded runs of seeds 1-6, judged on seeds 40-49: README, "Replies").
HALF_LIFE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class DrainMemory:
    at: float
    backlog: Mapping[Priority, int] = field(default_factory=dict)
    #: Smoothed messages finished per second, per priority (absent: not measured yet).
    served: Mapping[Priority, float] = field(default_factory=dict)
    #: Smoothed arrivals per second, per priority.
    arrivals: Mapping[Priority, float] = field(default_factory=dict)


def _smooth(old: float | None, sample: float, weight: float) -> float:
    return sample if old is None else old + weight * (sample - old)


def remember(memory: DrainMemory | None, snapshot: Snapshot) -> DrainMemory:
    """The memory after this snapshot (a class without figures keeps what it had)."""
    backlog: dict[Priority, int] = {}
    rates: dict[Priority, float] = {}
    for priority, metrics in snapshot.priorities.items():
        key = Priority(priority.value)
        if metrics.backlog is not None and metrics.arrival_rate is not None:
            backlog[key] = metrics.backlog
            rates[key] = metrics.arrival_rate
    if memory is None or snapshot.at <= memory.at:
        return DrainMemory(at=snapshot.at, backlog=backlog, arrivals=rates)
    dt = snapshot.at - memory.at
    weight = 1.0 - 0.5 ** (dt / HALF_LIFE_S)
    served = dict(memory.served)
    arrivals = dict(memory.arrivals)
    for p, rate in rates.items():
        arrivals[p] = _smooth(memory.arrivals.get(p), rate, weight)
        if p in memory.backlog:
            sample = max(0.0, rate - (backlog[p] - memory.backlog[p]) / dt)
            served[p] = _smooth(memory.served.get(p), sample, weight)
    return DrainMemory(
        at=snapshot.at,
        backlog={**memory.backlog, **backlog},
        served=served,
        arrivals=arrivals,
    )


def position_rate(memory: DrainMemory | None, priority: Priority) -> float:
    """How fast a waiting message of ``priority`` has been moving up, measured: what the
    pool finished of this class and every class served before it, less what those
    earlier classes kept adding ahead of it (0: not measured)."""
    if memory is None:
        return 0.0
    served = 0.0
    ahead = 0.0
    for p in PRIORITIES:
        served += memory.served.get(p, 0.0)
        if p is priority:
            break
        ahead += memory.arrivals.get(p, 0.0)
    return max(0.0, served - ahead)
