"""The report: medians, the best of the sweep, the ratios, and a table that says what failed."""

from __future__ import annotations

import pytest

from surge_operator.natsbench.result import (
    CLIENT_SWEEP,
    NatsBenchResult,
    empty_runs,
    render,
    summarise,
)


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


def test_summarise_takes_each_sweeps_best_median_and_divides_by_it() -> None:
    runs = empty_runs()
    sweep = {
        1: ([900.0, 1100.0, 1000.0], [3000.0] * 3),
        4: ([2000.0] * 3, [5000.0, 1.0, 4000.0]),
        16: ([1500.0] * 3, [3900.0] * 3),
    }
    for c, (always, lazy) in sweep.items():
        runs[f"fsync_always@{c}"] = always
        runs[f"fsync_lazy@{c}"] = lazy
    runs["surge"] = [500.0, 700.0, 600.0]
    runs["r1"] = [400.0]
    runs["end_to_end"] = [1200.0]
    result = summarise(NatsBenchResult(messages=10, size=8, rounds=3, where="x"), runs)
    assert result.nats_bench_clients["fsync_always"] == 4
    assert result.nats_bench_clients["fsync_lazy"] == 4  # median 4000 beats 3900 and 3000
    assert result.nats_bench["fsync_always"] == 2000.0
    assert result.fsync_cost_ratio == pytest.approx(0.5)
    assert result.surge_vs_nats_bench == pytest.approx(0.3)
    assert result.surge_vs_nats_end_to_end == pytest.approx(0.5)
    assert result.r1_vs_r3_ratio == pytest.approx(5.0)


def test_summarise_reports_zero_ratios_when_rows_failed_not_a_division_error() -> None:
    runs = empty_runs()
    for c in CLIENT_SWEEP:
        runs[f"fsync_always@{c}"] = [1000.0]
    runs["surge"] = [300.0]
    result = summarise(NatsBenchResult(messages=10, size=8, rounds=1, where="x"), runs)
    assert result.fsync_cost_ratio == 0.0
    assert result.r1_vs_r3_ratio == 0.0
    assert result.surge_vs_nats_end_to_end == 0.0
    assert result.surge_vs_nats_bench == pytest.approx(0.3)
