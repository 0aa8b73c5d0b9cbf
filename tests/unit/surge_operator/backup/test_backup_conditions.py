from __future__ import annotations

from datetime import UTC, datetime, timedelta

from surge_operator.api import BackupSpec, ConditionStatus
from surge_operator.backup.conditions import backup_status, job_outcome, restore_condition
from surge_operator.backup.records import RunRecord

SPEC = BackupSpec.model_validate(
    {"schedule": "0 * * * *", "target": {"pvc": {"claimName": "backups"}}}
)
CREATED = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)


def _ok(at: str) -> RunRecord:
    return RunRecord(
        outcome="succeeded",
        finished_at=at,
        backup="20261206T010000Z-abcdef",
        size_bytes=1024,
        duration_seconds=1.5,
        target="dir:/backup",
    )


def test_a_fresh_cluster_waits_for_its_first_backup_without_alarm() -> None:
    status, cond, overdue = backup_status(SPEC, None, None, created=CREATED, now=CREATED)
    assert (cond.status, cond.reason, overdue) == (ConditionStatus.UNKNOWN, "NoBackupYet", False)
    assert status.next_run == "2026-12-06T01:00:00Z"


def test_success_is_reported_with_size_duration_and_next_run() -> None:
    ok = _ok("2026-12-06T01:00:02Z")
    now = CREATED + timedelta(hours=1, minutes=5)
    status, cond, overdue = backup_status(SPEC, ok, ok, created=CREATED, now=now)
    assert cond.status is ConditionStatus.TRUE
    assert cond.reason == "BackupSucceeded"
    assert status.last_size_bytes == 1024
    assert status.last_successful_backup == "20261206T010000Z-abcdef"
    assert status.next_run == "2026-12-06T02:00:00Z"
    assert not overdue


def test_a_failure_names_its_reason_and_keeps_the_last_good_backup() -> None:
    ok = _ok("2026-12-06T01:00:02Z")
    failed = RunRecord(
        outcome="failed",
        finished_at="2026-12-06T02:00:05Z",
        target="s3:https://s3.example/b",
        reason="BackupTargetAuthFailed",
        message="SignatureDoesNotMatch",
    )
    now = CREATED + timedelta(hours=2, minutes=1)
    status, cond, _ = backup_status(SPEC, failed, ok, created=CREATED, now=now)
    assert (cond.status, cond.reason) == (ConditionStatus.FALSE, "BackupTargetAuthFailed")
    assert status.last_failure_reason == "BackupTargetAuthFailed"
    assert status.last_successful_backup == ok.backup


def test_no_success_within_twice_the_interval_is_overdue() -> None:
    ok = _ok("2026-12-06T01:00:02Z")
    now = datetime(2026, 12, 6, 3, 30, tzinfo=UTC)
    _, cond, overdue = backup_status(SPEC, ok, ok, created=CREATED, now=now)
    assert overdue
    assert (cond.status, cond.reason) == (ConditionStatus.FALSE, "BackupOverdue")


def test_a_suspended_schedule_is_never_overdue() -> None:
    suspended = SPEC.model_copy(update={"suspend": True})
    now = CREATED + timedelta(days=3)
    status, _, overdue = backup_status(suspended, None, None, created=CREATED, now=now)
    assert not overdue
    assert status.next_run is None


def test_job_outcomes_come_from_the_job_conditions() -> None:
    assert job_outcome(None).phase == "absent"
    assert job_outcome({"status": {"active": 1}}).phase == "running"
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_outcome(done).phase == "succeeded"
    failed = {
        "status": {
            "failed": 5,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
        }
    }
    outcome = job_outcome(failed)
    assert outcome.phase == "failed"
    assert "BackoffLimitExceeded" in outcome.message
    assert "5 attempt" in outcome.message


def test_restore_conditions_say_what_is_restored_and_what_waits() -> None:
    running = restore_condition(job_outcome({"status": {}}), "latest", "team-a/old")
    assert (running.status, running.reason) == (ConditionStatus.FALSE, "Restoring")
    assert "workers start when it is done" in running.message
