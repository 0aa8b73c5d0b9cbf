"""Pure scoring of a live run, the way the simulator scores its runs (`simulate.engine`).

Violation minutes: per `window_s` window and priority, the p95 of the queue waits of the
messages started in the window, of those still queued at its end (their age) and of
refused writes whose clients still retry (their wait since the first attempt); a window
whose p95 exceeds the priority's target counts `window_s` seconds.

Which messages are still queued is inferred per priority from counts: everything
accepted by t minus everything started by t, the most recently accepted first (service is
first in, first out per priority, as in the simulator's cohorts).

A worker's capacity is measured from the ticks in which the pool was saturated
(`saturated_worker_rate`), as the simulator's world needs it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from surge_operator.api import Priority
from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.simulate.world import weighted_p95


@dataclass(slots=True)
class PriorityLog:
    """What happened to one priority's messages (times on the run's clock, seconds)."""

    #: When the gateway accepted each message (202).
    accepted: list[float] = field(default_factory=list)
    #: (started at, queue wait) of each message a handler started.
    started: list[tuple[float, float]] = field(default_factory=list)
    #: (first offered, first refused, accepted at or inf) of each write the gateway
    #: refused at least once: its client retried from the refusal until accepted.
    retrying: list[tuple[float, float, float]] = field(default_factory=list)


def violation_minutes(
    logs: Mapping[Priority, PriorityLog],
    targets: Mapping[Priority, float],
    *,
    duration_s: float,
    window_s: float = 10.0,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in PRIORITY_ORDER:
        log = logs.get(p, PriorityLog())
        accepted = sorted(log.accepted)
        started = sorted(log.started)
        start_times = [t for t, _ in started]
        windows = 0
        t0 = 0.0
        while t0 + window_s <= duration_s + 1e-9:
            t1 = t0 + window_s
            samples = window_samples(accepted, started, start_times, log, t0, t1)
            value = weighted_p95(samples)
            if value is not None and value > targets.get(p, math.inf):
                windows += 1
            t0 = t1
        out[p.value] = round(windows * window_s / 60, 2)
    out["total"] = round(sum(out[p.value] for p in PRIORITY_ORDER), 2)
    return out


def window_samples(
    accepted: Sequence[float],
    started: Sequence[tuple[float, float]],
    start_times: Sequence[float],
    log: PriorityLog,
    t0: float,
    t1: float,
) -> list[tuple[float, float]]:
    lo = bisect.bisect_right(start_times, t0)
    hi = bisect.bisect_right(start_times, t1)
    samples = [(wait, 1.0) for _, wait in started[lo:hi]]
    in_by_t1 = bisect.bisect_right(accepted, t1)
    queued = max(0, in_by_t1 - hi)
    samples += [(t1 - a, 1.0) for a in accepted[in_by_t1 - queued : in_by_t1]]
    # Refused writes still being retried at t1 wait since their first attempt.
    samples += [(t1 - first, 1.0) for first, refused, ok in log.retrying if refused <= t1 < ok]
    return samples


def replica_seconds(samples: Sequence[tuple[float, int]], until: float) -> float:
    """Integral of a step function of (time, replicas asked for) up to `until`."""
    total = 0.0
    for (t, n), (t_next, _) in zip(samples, [*samples[1:], (until, 0)], strict=True):
        total += n * max(0.0, min(t_next, until) - t)
    return total


#: Fewest saturated ticks a per-worker rate is measured from.
MIN_SATURATED_TICKS = 3


def saturated_worker_rate(ticks: Sequence[tuple[float, int, float, int]]) -> float | None:
    """Messages per second one worker handled while the pool was saturated: the median
    of acks per ready worker over ticks with messages no worker had pulled and the same
    ready count as the tick before. `ticks` are (at, ready, completions/s, waiting).

    That is a worker's capacity in this pipeline: handler time plus what each message
    costs around the handler (pull, decode, ack, metrics) on this machine. The handler
    histogram alone leaves that out and puts the capacity a third too high under load.
    """
    samples = [
        completions / ready
        for (_, before, _, _), (_, ready, completions, waiting) in itertools.pairwise(ticks)
        if waiting > 0 and ready > 0 and ready == before and completions >= 1.0
    ]
    if len(samples) < MIN_SATURATED_TICKS:
        return None
    return statistics.median(samples)
