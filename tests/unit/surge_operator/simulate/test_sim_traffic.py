"""Traffic profiles and trace CSVs."""

from __future__ import annotations

from pathlib import Path

import pytest

from surge_operator.api import Priority
from surge_operator.simulate.traffic import (
    PROFILES,
    TraceError,
    draw_arrivals,
    flash_surge,
    parse_trace,
    read_trace,
    write_trace,
)


def test_flash_surge_is_ten_times_within_thirty_seconds() -> None:
    before = sum(flash_surge(59).values())
    after = sum(flash_surge(90).values())
    assert after == pytest.approx(10 * before)


def test_same_seed_same_arrivals_other_seed_other_arrivals() -> None:
    profile = PROFILES["flash-surge"]
    assert draw_arrivals(profile, 7) == draw_arrivals(profile, 7)
    assert draw_arrivals(profile, 7).counts != draw_arrivals(profile, 8).counts


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_has_a_surge_onset_after_its_quiet_start(name: str) -> None:
    arrivals = draw_arrivals(PROFILES[name], 1)
    assert 30 <= arrivals.onset_s() < arrivals.duration_s


def test_trace_round_trips_through_csv(tmp_path: Path) -> None:
    arrivals = draw_arrivals(PROFILES["outage-release"], 3)
    path = tmp_path / "trace.csv"
    write_trace(arrivals, path)
    again = read_trace(path)
    assert again.counts == arrivals.counts


def test_trace_sums_duplicate_rows_and_fills_gaps() -> None:
    trace = parse_trace(
        ["t,priority,count", "0,critical,3", "0,critical,2", "2,bulk,7"], name="tiny"
    )
    assert trace.duration_s == 3
    assert trace.counts[0][Priority.CRITICAL] == 5
    assert trace.total(1) == 0
    assert trace.counts[2][Priority.BULK] == 7


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["time,priority,count", "0,critical,1"], "header"),
        (["t,priority,count", "0,urgent,1"], "line 2"),
        (["t,priority,count", "0,critical"], "3 columns"),
        (["t,priority,count", "-1,critical,1"], "negative"),
        (["t,priority,count"], "no rows"),
    ],
)
def test_bad_traces_say_which_line_and_why(lines: list[str], message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_trace(lines, name="bad")


def test_drawn_arrivals_are_burstier_than_poisson() -> None:
    arrivals = draw_arrivals(PROFILES["outage-release"], 4)
    # The first two minutes are flat at 300 msg/s: Poisson would give variance == mean.
    totals = [arrivals.total(s) for s in range(110)]
    mean = sum(totals) / len(totals)
    variance = sum((x - mean) ** 2 for x in totals) / (len(totals) - 1)
    assert variance > 3 * mean


def test_bundled_profiles_carry_their_known_onset() -> None:
    arrivals = draw_arrivals(PROFILES["outage-release"], 1)
    assert arrivals.surge_onset() == 240.0


def test_rates_from_prometheus_become_per_second_counts_keeping_the_totals() -> None:
    from surge_operator.simulate.traffic import arrivals_from_rates

    series = {
        Priority.CRITICAL: [(1000.0, 2.5), (1002.0, 2.5)],
        Priority.BULK: [(1000.0, 10.0), (1001.0, float("nan")), (1002.0, 0.0)],
    }
    arrivals = arrivals_from_rates("prom", series, step_s=2.0)
    assert arrivals.duration_s == 4
    assert sum(c[Priority.CRITICAL] for c in arrivals.counts) == 10  # 2.5/s over 4 s
    assert sum(c[Priority.BULK] for c in arrivals.counts) == 20  # 10/s over the first 2 s
    assert [c[Priority.BULK] for c in arrivals.counts] == [10, 10, 0, 0]
    with pytest.raises(TraceError, match="no samples"):
        arrivals_from_rates("prom", {}, step_s=1.0)


def test_history_ranges_are_parsed_or_refused_by_name() -> None:
    from surge_operator.prometheus_history import HistoryError, parse_duration, parse_end

    assert parse_duration("90s") == 90
    assert parse_duration("2h") == 7200
    with pytest.raises(HistoryError, match="--range"):
        parse_duration("soon")
    assert parse_end("2026-01-02T03:04:05").tzinfo is not None
    with pytest.raises(HistoryError, match="--end"):
        parse_end("yesterday")
