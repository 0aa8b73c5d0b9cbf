"""`surge bench nats` pieces that need no servers."""

from __future__ import annotations

import pytest

from surge_operator.bench_nats import NatsBenchResult, parse_nats_bench, render


def test_the_aggregate_rate_is_read_from_nats_bench_output() -> None:
    out = "Pub stats: 12,345 msgs/sec ~ 12.06 MB/sec\n [1] 12,345 msgs/sec ~ 12.06 MB/sec"
    assert parse_nats_bench(out) == 12345.0


def test_output_without_a_rate_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="no msgs/sec"):
        parse_nats_bench("nats: error: connection refused")


def test_render_says_when_the_goal_is_missed() -> None:
    result = NatsBenchResult(messages=10, size=8, rounds=1, where="loopback")
    result.nats_bench = {"fsync_always": 1000.0, "fsync_lazy": 4000.0, "r3": 1000.0, "r1": 2000.0}
    result.runs = {
        "fsync_always": [1000.0],
        "fsync_lazy": [4000.0],
        "r1": [2000.0],
        "surge": [400.0],
    }
    result.surge_vs_nats_bench = 0.4
    assert "goal >= 0.5: MISSED" in render(result)


def test_a_row_that_failed_every_run_says_failed_not_zero() -> None:
    result = NatsBenchResult(messages=10, size=8, rounds=1, where="loopback")
    result.nats_bench = {"fsync_always": 1000.0, "fsync_lazy": 4000.0, "r3": 1000.0, "r1": 0.0}
    result.runs = {"fsync_always": [1000.0], "fsync_lazy": [4000.0], "r1": [], "surge": [600.0]}
    result.surge_vs_nats_bench = 0.6
    text = render(result)
    assert "R1 fsync always" in text
    assert "failed" in text.split("R1 fsync always")[1].splitlines()[0]
    assert "goal >= 0.5: met" in text
