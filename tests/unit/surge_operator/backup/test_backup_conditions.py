from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from surge_operator.api import BackupSpec, ConditionStatus
from surge_operator.backup.conditions import (
    backup_status,
    job_outcome,
    refused_pod,
    restore_condition,
    termination_message,
)
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


def _refused_job(exit_code: int) -> dict[str, Any]:
    message = (
        "Container surge-backup for pod team-a/support-restore-x7k2p failed with exit code "
        f"{exit_code} matching FailJob rule at index 0"
    )
    return {
        "status": {
            "failed": 1,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "message": message,
                }
            ],
        }
    }


def test_a_refused_restore_names_its_pod_and_the_field_to_change() -> None:
    assert refused_pod(_refused_job(3)) == "support-restore-x7k2p"
    assert refused_pod(_refused_job(1)) is None, "any other failure is retried, not refused"
    assert refused_pod(None) is None
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "name": "surge-backup",
                    "state": {"terminated": {"exitCode": 3, "message": "set spec.stream.x=y\n"}},
                }
            ]
        }
    }
    refusal = termination_message(pod, "surge-backup")
    assert refusal == "set spec.stream.x=y"
    assert termination_message(pod, "other") is None
    update = restore_condition(job_outcome(_refused_job(3)), "latest", "team-a/old", refusal)
    assert (update.status, update.reason) == (ConditionStatus.FALSE, "RestoreConflict")
    assert "spec.stream.x=y" in update.message
    # without the pod's message it is an ordinary failure
    plain = restore_condition(job_outcome(_refused_job(3)), "latest", "team-a/old")
    assert plain.reason == "RestoreFailed"
