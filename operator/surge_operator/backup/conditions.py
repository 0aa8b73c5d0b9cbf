"""Pure: what status says about backups and the restore, from what the runs recorded.

No I/O, no clock reads: the timer and the reconcile pass `now` and what they read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from surge_operator.api import BackupSpec, BackupStatus, ConditionStatus, ConditionType
from surge_operator.backup.contract import CONFLICT_EXIT_CODE
from surge_operator.backup.records import RunRecord
from surge_operator.backup.schedule import is_overdue, next_run
from surge_operator.status import ConditionUpdate, timestamp


def parse_time(stamp: str | None) -> datetime | None:
    """An RFC 3339 time as written in status and run records ('Z' or an offset)."""
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def backup_status(
    spec: BackupSpec,
    last: RunRecord | None,
    last_success: RunRecord | None,
    *,
    created: datetime,
    now: datetime,
) -> tuple[BackupStatus, ConditionUpdate, bool]:
    """(status.backup, the BackedUp condition, overdue?)."""
    failed = last is not None and last.outcome == "failed"
    status = BackupStatus(
        last_successful_backup=last_success.backup if last_success else None,
        last_successful_time=last_success.finished_at if last_success else None,
        last_size_bytes=last_success.size_bytes if last_success else None,
        last_duration_seconds=last_success.duration_seconds if last_success else None,
        last_failure_time=last.finished_at if failed and last else None,
        last_failure_reason=last.reason if failed and last else None,
        next_run=None if spec.suspend else timestamp(next_run(spec.schedule, now)),
    )
    succeeded_at = parse_time(last_success.finished_at) if last_success else None
    overdue = not spec.suspend and is_overdue(spec.schedule, succeeded_at, created, now)
    if failed and last is not None:
        # The message names the target and the reason, never credentials (records hold none).
        condition = ConditionUpdate(
            ConditionType.BACKED_UP,
            ConditionStatus.FALSE,
            last.reason or "BackupFailed",
            f"last run failed at {last.finished_at} ({last.target}): {last.message or ''}".strip(),
        )
    elif last_success is not None:
        condition = ConditionUpdate(
            ConditionType.BACKED_UP,
            ConditionStatus.FALSE if overdue else ConditionStatus.TRUE,
            "BackupOverdue" if overdue else "BackupSucceeded",
            f"backup {last_success.backup}: {last_success.size_bytes} bytes in "
            f"{last_success.duration_seconds} s at {last_success.finished_at} "
            f"({last_success.target}); next run {status.next_run or 'suspended'}",
        )
    else:
        condition = ConditionUpdate(
            ConditionType.BACKED_UP,
            ConditionStatus.FALSE if overdue else ConditionStatus.UNKNOWN,
            "BackupOverdue" if overdue else "NoBackupYet",
            f"no backup has succeeded yet; next run {status.next_run or 'suspended'}",
        )
    return status, condition, overdue


JobPhase = Literal["absent", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobOutcome:
    phase: JobPhase
    message: str = ""


def job_outcome(job: Mapping[str, Any] | None) -> JobOutcome:
    """Where a batch/v1 Job stands, from its status conditions."""
    if job is None:
        return JobOutcome("absent")
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobOutcome("succeeded")
        if cond.get("type") == "Failed":
            detail = cond.get("message") or cond.get("reason") or "failed"
            return JobOutcome("failed", f"{detail} after {status.get('failed', 0)} attempt(s)")
    return JobOutcome("running", f"{status.get('failed', 0)} failed attempt(s) so far")


_REFUSED_POD = re.compile(
    rf"for pod [^/\s]+/(\S+) failed with exit code {CONFLICT_EXIT_CODE} matching FailJob"
)


def refused_pod(job: Mapping[str, Any] | None) -> str | None:
    """The pod whose refusal failed the restore Job (its podFailurePolicy rule names it in
    the Failed condition), or None when the Job failed some other way."""
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            found = _REFUSED_POD.search(str(cond.get("message") or ""))
            return found.group(1) if found else None
    return None


def termination_message(pod: Mapping[str, Any] | None, container: str) -> str | None:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            return str(message).strip() or None if message else None
    return None


def restore_condition(
    outcome: JobOutcome, backup: str, source: str, refusal: str | None = None
) -> ConditionUpdate:
    what = f"backup {backup} of {source}"
    if outcome.phase == "failed" and refusal:
        return ConditionUpdate(
            ConditionType.RESTORED,
            ConditionStatus.FALSE,
            "RestoreConflict",
            f"restoring {what} was refused: {refusal}; workers stay off (change the field, "
            "then delete the Job to try again)",
        )
    if outcome.phase == "succeeded":
        return ConditionUpdate(
            ConditionType.RESTORED, ConditionStatus.TRUE, "RestoreSucceeded", f"restored {what}"
        )
    if outcome.phase == "failed":
        return ConditionUpdate(
            ConditionType.RESTORED,
            ConditionStatus.FALSE,
            "RestoreFailed",
            f"restoring {what} failed: {outcome.message}; workers stay off until it succeeds "
            "(delete the Job to try again)",
        )
    return ConditionUpdate(
        ConditionType.RESTORED,
        ConditionStatus.FALSE,
        "Restoring",
        f"restoring {what}; workers start when it is done ({outcome.message})".rstrip(" ()"),
    )
