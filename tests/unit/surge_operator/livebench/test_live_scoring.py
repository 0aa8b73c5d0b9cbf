"""The live bench's pure parts: the compressed profile and the scoring that mirrors the
simulator's."""

from __future__ import annotations

import math

from surge_operator.api import Priority
from surge_operator.livebench.arrivals import compress
from surge_operator.livebench.measure import (
    PriorityLog,
    replica_seconds,
    saturated_worker_rate,
    violation_minutes,
)
from surge_operator.livebench.replay import _share
from surge_operator.livebench.run import agree
from surge_operator.simulate.traffic import load_arrivals

TARGETS = {Priority.CRITICAL: 2.0, Priority.NORMAL: 10.0, Priority.BULK: 60.0}


def test_compression_keeps_the_shape_and_scales_the_peak() -> None:
    original = load_arrivals("flash-surge", 3)
    small = compress(original, speedup=5, peak_rate=80.0, max_replicas=7)
    assert small.duration_s == math.ceil(original.duration_s / 5)
    assert small.surge_onset() == original.surge_onset() / 5
    assert small.max_replicas == 7
    totals = [small.total(s) for s in range(small.duration_s)]
    busiest = max(sum(totals[s : s + 5]) / len(totals[s : s + 5]) for s in range(len(totals)))
    assert abs(busiest - 80.0) <= 2.0
    # The surge is still a surge: the peak is several times the opening.
    assert busiest > 4 * (sum(totals[:5]) / 5)
    # Rounding carries over: the scaled total is the exact total times the factor.
    factor = 80.0 / max(
        sum(original.total(s) for s in range(k * 5, k * 5 + 25)) / 5
        for k in range(small.duration_s)
    )
    exact = sum(original.total(s) for s in range(original.duration_s)) * factor
    assert abs(sum(totals) - exact) <= 3


def test_a_slot_share_spreads_every_message() -> None:
    for count in (0, 1, 7, 100, 101):
        assert sum(_share(count, slot, 4) for slot in range(4)) == count


def test_waits_under_target_are_no_violation() -> None:
    log = PriorityLog(accepted=[t * 0.5 for t in range(40)])
    log.started = [(t * 0.5 + 1.0, 1.0) for t in range(40)]
    minutes = violation_minutes({Priority.CRITICAL: log}, TARGETS, duration_s=20.0)
    assert minutes["total"] == 0.0


def test_a_window_of_long_waits_is_a_violation() -> None:
    log = PriorityLog(accepted=[1.0] * 10, started=[(15.0, 14.0)] * 10)
    minutes = violation_minutes({Priority.CRITICAL: log}, TARGETS, duration_s=20.0)
    # The first window has them queued (age 9 s at t=10), the second starts them at 14 s.
    assert minutes["critical"] == round(20 / 60, 2)


def test_messages_never_started_count_as_waiting() -> None:
    log = PriorityLog(accepted=[0.5] * 10)
    minutes = violation_minutes({Priority.NORMAL: log}, TARGETS, duration_s=30.0)
    # Age 9.5 s at the first window's end (under 10), then 19.5 and 29.5.
    assert minutes["normal"] == round(20 / 60, 2)


def test_refused_writes_wait_from_their_first_attempt() -> None:
    log = PriorityLog(retrying=[(0.0, 0.1, math.inf)] * 5)
    minutes = violation_minutes({Priority.CRITICAL: log}, TARGETS, duration_s=20.0)
    assert minutes["critical"] == round(20 / 60, 2)
    served = PriorityLog(retrying=[(0.0, 0.1, 1.0)] * 5)
    assert violation_minutes({Priority.CRITICAL: served}, TARGETS, duration_s=20.0)["total"] == 0


def test_replica_seconds_integrate_what_was_asked_for() -> None:
    assert replica_seconds([(0.0, 2), (10.0, 5), (20.0, 1)], 30.0) == 2 * 10 + 5 * 10 + 1 * 10
    assert replica_seconds([(0.0, 3)], 4.0) == 12.0


def test_agreement_is_relative_with_a_floor_of_one_window() -> None:
    assert agree(100.0, 119.0)
    assert not agree(100.0, 130.0)
    assert agree(0.0, 0.17)
    assert not agree(0.0, 0.33)


def test_a_workers_capacity_is_measured_only_while_the_pool_is_saturated() -> None:
    # (at, ready, completions/s, waiting): keeping up (waiting 0) says nothing about
    # capacity; a tick right after the pool grew neither (the new worker was not there
    # for the whole interval).
    ticks = [
        (0.0, 2, 20.0, 0),
        (1.0, 2, 60.0, 40),
        (2.0, 2, 56.0, 80),
        (3.0, 3, 70.0, 90),
        (4.0, 3, 84.0, 60),
        (5.0, 3, 30.0, 0),
    ]
    assert saturated_worker_rate(ticks) == 28.0
    assert saturated_worker_rate(ticks[:3]) is None
