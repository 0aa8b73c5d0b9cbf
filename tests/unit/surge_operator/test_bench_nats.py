"""`surge bench nats` pieces that need no servers."""

from __future__ import annotations

import pytest

from surge_operator.bench_nats import (
    CLIENT_SWEEP,
    POLL_MAX,
    POLL_MIN,
    NatsBenchResult,
    parse_nats_bench,
    poll_delay,
    render,
)

# natscli v0.5.0's output (trimmed): each client's rate comes before the aggregate.
V05_OUTPUT = """
  [1] 5,905 msgs/sec ~ 5.8 MiB/sec ~ min: 29,804.08us ~ avg: 84,603.22us (2,500 msgs)
  [2] 3,812 msgs/sec ~ 3.7 MiB/sec ~ min: 73,426.41us ~ avg: 129,665.70us (2,500 msgs)

 NATS JetStream asynchronous publisher aggregated stats: 13,527 msgs/sec ~ 13 MiB/sec
 message rates min 3,382 | avg 4,247 | max 5,905 | stddev 976 msgs
"""


def test_the_aggregate_rate_is_read_not_the_first_clients() -> None:
    assert parse_nats_bench(V05_OUTPUT) == 13527.0


def test_one_clients_run_has_its_own_stats_line() -> None:
    out = "NATS JetStream asynchronous publisher stats: 8,247 msgs/sec ~ 8.1 MiB/sec ~ min:"
    assert parse_nats_bench(out) == 8247.0


def test_the_older_pub_stats_line_is_the_aggregate_too() -> None:
    out = " [1] 3,000 msgs/sec ~ 3 MB/sec\nPub stats: 12,345 msgs/sec ~ 12.06 MB/sec"
    assert parse_nats_bench(out) == 12345.0


def test_per_client_rates_alone_are_an_error_not_the_aggregate() -> None:
    with pytest.raises(RuntimeError, match="no aggregate"):
        parse_nats_bench("  [1] 5,905 msgs/sec ~ 5.8 MiB/sec")


def test_output_without_a_rate_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="no aggregate msgs/sec"):
        parse_nats_bench("nats: error: connection refused")


def test_render_says_when_the_goal_is_missed() -> None:
    result = NatsBenchResult(messages=10, size=8, rounds=1, where="loopback")
    result.nats_bench = {"fsync_always": 1000.0, "fsync_lazy": 4000.0, "r3": 1000.0, "r1": 2000.0}
    result.runs = {
        **{f"fsync_always@{c}": [1000.0] for c in CLIENT_SWEEP},
        **{f"fsync_lazy@{c}": [4000.0] for c in CLIENT_SWEEP},
        "r1": [2000.0],
        "surge": [400.0],
    }
    result.surge_vs_nats_bench = 0.4
    assert "goal >= 0.5: MISSED" in render(result)


def test_a_row_that_failed_every_run_says_failed_not_zero() -> None:
    result = NatsBenchResult(messages=10, size=8, rounds=1, where="loopback")
    result.nats_bench = {"fsync_always": 1000.0, "fsync_lazy": 4000.0, "r3": 1000.0, "r1": 0.0}
    result.runs = {
        **{f"fsync_always@{c}": [1000.0] for c in CLIENT_SWEEP},
        **{f"fsync_lazy@{c}": [4000.0] for c in CLIENT_SWEEP},
        "r1": [],
        "surge": [600.0],
    }
    result.surge_vs_nats_bench = 0.6
    text = render(result)
    assert "R1 fsync always" in text
    assert "failed" in text.split("R1 fsync always")[1].splitlines()[0]
    assert "goal >= 0.5: met" in text


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
