"""The surge's schedule (steady, linear ramp, held peak) and rates measured from sends."""

from __future__ import annotations

import pytest

from surge_operator.chaos.surge_profile import Ramp, peak_rate, rate_before

RAMP = Ramp(base=60.0, factor=5.0, steady_s=1.5, ramp_s=3.0)


def due_within(schedule: list[float], start: float, end: float) -> int:
    return sum(1 for t in schedule if start <= t < end)


def test_the_schedule_is_the_rate_integrated() -> None:
    schedule = RAMP.schedule(2000)
    assert schedule == sorted(schedule)
    assert RAMP.peak == 300.0
    # steady: 60/s; ramp: the mean of 60 and 300 per second over 3 s; then 300/s
    assert due_within(schedule, 0.0, 1.5) == 90
    assert due_within(schedule, 1.5, 4.5) == pytest.approx(540, abs=1)
    assert due_within(schedule, 4.5, 5.5) == pytest.approx(300, abs=1)
    # the ramp is linear: its first second is slower than its last
    assert due_within(schedule, 1.5, 2.5) < due_within(schedule, 3.5, 4.5)


def test_the_peak_index_is_the_first_message_due_at_the_peak() -> None:
    i = RAMP.peak_index(2000)
    assert i == 630
    assert RAMP.offset(i - 1) < RAMP.peak_at_s <= RAMP.offset(i)


def test_a_run_shorter_than_the_ramp_is_killed_at_its_last_message() -> None:
    assert RAMP.peak_index(100) == 99


def test_a_flat_ramp_is_a_steady_rate() -> None:
    flat = Ramp(base=10.0, factor=1.0, steady_s=1.0, ramp_s=2.0)
    assert flat.schedule(40)[25] == pytest.approx(2.5)


def test_rates_are_counted_per_second_before_the_end() -> None:
    times = [0.1, 0.5, 1.2, 1.3, 1.4, 1.5, 1.9, 3.0]
    assert rate_before(times, 2.0) == 5.0  # 1.2 .. 1.9
    assert rate_before(times, 2.0, width=0.5) == 2 / 0.5  # 1.5, 1.9
    assert peak_rate(times, until=2.0) == 5.0
    assert peak_rate(times, until=1.0) == 2.0
    assert peak_rate([], until=1.0) == 0.0
