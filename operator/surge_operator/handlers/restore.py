"""Hold a new cluster's workers until its restore Job has put the backup back.

Workers must not start before the restore: they would process messages against empty
transcripts, and the provisioning step would create the streams the restore needs to
create itself. So while spec.restoreFrom is pending, reconcile applies everything but the
Deployments, skips JetStream provisioning, and runs this gate.
"""

from __future__ import annotations

from surge_operator.api import (
    ConditionStatus,
    MessagingClusterSpec,
    MessagingClusterStatus,
    RestoreStatus,
)
from surge_operator.backup.conditions import (
    job_outcome,
    refused_pod,
    restore_condition,
    termination_message,
)
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.state import ClusterState
from surge_operator.logs import get_logger
from surge_operator.resources import BuildContext
from surge_operator.resources.backup import CONTAINER, build_restore_job, restore_job_name
from surge_operator.status import ConditionUpdate, timestamp

log = get_logger()


def restore_pending(spec: MessagingClusterSpec, status: MessagingClusterStatus) -> bool:
    if spec.restore_from is None:
        return False
    return status.restore is None or status.restore.completed_time is None


async def restore_gate(deps: Deps, ctx: BuildContext, cs: ClusterState) -> ConditionUpdate:
    """Start the restore Job if needed and report where it stands. On success, records
    status.restore so the gate never runs again for this cluster."""
    source = ctx.spec.restore_from
    assert source is not None
    name = restore_job_name(ctx.name)
    job = await deps.kube.get("batch/v1", "Job", ctx.namespace, name)
    if job is None:
        job = await deps.kube.apply(
            build_restore_job(ctx), field_manager=deps.config.apply.field_manager
        )
        log.info("restore_started", backup=source.backup, source=source.cluster, job=name)
    outcome = job_outcome(job)
    refusal = None
    if outcome.phase == "failed" and (pod := refused_pod(job)) is not None:
        failed = await deps.kube.get("v1", "Pod", ctx.namespace, pod)
        refusal = termination_message(failed, CONTAINER)
    update = restore_condition(outcome, source.backup, source.cluster, refusal)
    if update.status is ConditionStatus.TRUE:
        cs.status = cs.status.model_copy(
            update={
                "restore": RestoreStatus(
                    backup=source.backup,
                    source=source.cluster,
                    completed_time=timestamp(deps.now()),
                )
            }
        )
        log.info("restore_done", backup=source.backup, source=source.cluster)
    return update
