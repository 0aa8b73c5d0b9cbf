"""The backup timer: read what the backup Jobs recorded, and show it.

Runs every BACKUP_TICK seconds per cluster that has spec.backup. It reads the run
records in NATS (backup/records.py), turns them into status.backup, the BackedUp
condition, Events for runs it has not reported yet, and metrics. It never starts a backup
(the CronJob does) and never blocks the data plane: a failure here is a log line.
"""

from __future__ import annotations

from datetime import datetime

from surge_operator.backup.conditions import backup_status, parse_time
from surge_operator.backup.records import read_records
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.reconcile import _flush, emit
from surge_operator.handlers.state import ClusterState
from surge_operator.jetstream import NatsAuth
from surge_operator.logs import get_logger
from surge_operator.status import apply_updates

BACKUP_TICK = 30.0

log = get_logger()


async def backup_tick(deps: Deps, cs: ClusterState, created: datetime) -> None:
    spec = cs.spec
    if spec is None or spec.backup is None or cs.nats_url is None or cs.status.stream is None:
        return
    js = await deps.js.jetstream(cs.nats_url, cs.auth or NatsAuth())
    last, last_success = await read_records(js, cs.status.stream)
    now = deps.now()
    status, condition, overdue = backup_status(
        spec.backup, last, last_success, created=created, now=now
    )
    ref = cs.ref
    labels = (ref.namespace, ref.name)
    async with cs.lock:
        before = cs.status.backup
        if status.last_successful_time and (
            before is None or before.last_successful_time != status.last_successful_time
        ):
            deps.metrics.backup_runs.labels(*labels, "succeeded").inc()
            await emit(deps, ref, "Normal", "BackupSucceeded", condition.message)
        if status.last_failure_time and (
            before is None or before.last_failure_time != status.last_failure_time
        ):
            deps.metrics.backup_runs.labels(*labels, "failed").inc()
            log.warning("backup_failed", reason=status.last_failure_reason)
            await emit(deps, ref, "Warning", condition.reason, condition.message)
        cs.status = cs.status.model_copy(
            update={
                "backup": status,
                "conditions": apply_updates(cs.status.conditions, [condition], now, cs.generation),
            }
        )
        await _flush(deps, cs)
    if (at := parse_time(status.last_successful_time)) is not None:
        deps.metrics.backup_last_success.labels(*labels).set(at.timestamp())
    if status.last_size_bytes is not None:
        deps.metrics.backup_size.labels(*labels).set(status.last_size_bytes)
    if status.last_duration_seconds is not None:
        deps.metrics.backup_duration.labels(*labels).set(status.last_duration_seconds)
    deps.metrics.backup_overdue.labels(*labels).set(1 if overdue else 0)
