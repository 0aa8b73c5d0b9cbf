"""Backup schedules: cron syntax, next run, and when a cluster counts as overdue.

Pure: times come in as arguments. The alert rule mirrors :func:`is_overdue`: no success
within twice the schedule's interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter


class InvalidScheduleError(ValueError):
    pass


def validate(expr: str) -> str:
    if not croniter.is_valid(expr) or len(expr.split()) != 5:
        raise InvalidScheduleError(
            f"spec.backup.schedule {expr!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    return expr


def next_run(expr: str, after: datetime) -> datetime:
    result: datetime = croniter(validate(expr), after).get_next(datetime)
    return result


def interval(expr: str, at: datetime) -> timedelta:
    """The gap between the two runs that follow `at` (cron gaps can vary; this is the one
    an operator would see next)."""
    first = next_run(expr, at)
    return next_run(expr, first) - first


def is_overdue(expr: str, last_success: datetime | None, created: datetime, now: datetime) -> bool:
    """True when no backup has succeeded within twice the schedule's interval (counted from
    the cluster's creation when none has ever succeeded)."""
    since = last_success or created
    return now - since > 2 * interval(expr, since)
