"""How often the bench looks at the ack floor: rarely, and still on time."""

from __future__ import annotations

import pytest

from surge_operator.natsbench.ackfloor import POLL_MAX, POLL_MIN, poll_delay


def test_poll_delay_halves_the_expected_time_left_within_bounds() -> None:
    assert poll_delay(4000, 2000.0) == pytest.approx(1.0)  # 2 s left: look again in 1 s
    assert poll_delay(1000, 2000.0) == pytest.approx(0.25)
    assert poll_delay(10, 2000.0) == POLL_MIN  # nearly done: the finest step
    assert poll_delay(10**6, 2000.0) == POLL_MAX
    assert POLL_MIN < poll_delay(1000, 0.0) <= POLL_MAX  # no rate seen yet


def test_poll_delay_looks_a_handful_of_times_where_a_fixed_step_looks_a_hundred() -> None:
    # A 5 s drain at a steady 2,000 msg/s, as the bench's own loop sees it.
    remaining, looks, clock = 10_000, 0, 0.0
    while remaining > 0:
        looks += 1
        step = poll_delay(remaining, 2000.0)
        clock += step
        remaining = max(0, 10_000 - int(clock * 2000))
    assert looks < 5_000 / 50 / 5  # under a fifth of one look per 50 ms
    assert clock - 5.0 <= POLL_MIN  # and the end is seen within the finest step
