from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from surge_operator.backup.schedule import (
    InvalidScheduleError,
    interval,
    is_overdue,
    next_run,
    validate,
)

T0 = datetime(2026, 12, 6, 3, 7, tzinfo=UTC)


def test_next_run_follows_the_cron_expression() -> None:
    assert next_run("*/15 * * * *", T0) == datetime(2026, 12, 6, 3, 15, tzinfo=UTC)
    assert next_run("0 2 * * *", T0) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_interval_is_the_gap_between_the_next_two_runs() -> None:
    assert interval("*/15 * * * *", T0) == timedelta(minutes=15)
    assert interval("0 2 * * *", T0) == timedelta(days=1)


@pytest.mark.parametrize("expr", ["", "every day", "* * * *", "61 * * * *", "* * * * * *"])
def test_invalid_schedules_name_the_field(expr: str) -> None:
    with pytest.raises(InvalidScheduleError, match=r"spec\.backup\.schedule"):
        validate(expr)


def test_overdue_after_twice_the_interval_without_success() -> None:
    hourly = "0 * * * *"
    last = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert not is_overdue(hourly, last, T0, last + timedelta(minutes=119))
    assert is_overdue(hourly, last, T0, last + timedelta(minutes=121))


def test_a_cluster_that_never_succeeded_is_judged_from_its_creation() -> None:
    hourly = "0 * * * *"
    created = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert not is_overdue(hourly, None, created, created + timedelta(minutes=90))
    assert is_overdue(hourly, None, created, created + timedelta(hours=3))
