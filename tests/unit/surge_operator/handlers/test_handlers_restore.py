"""A cluster created with spec.restoreFrom: no workers and no provisioning until the
restore Job has succeeded; then everything starts, and the gate never runs again."""

from __future__ import annotations

from typing import Any

import pytest
from handler_fakes import REF, SPEC, FakeJetStream, FakeKube, make_deps

from surge_operator.api import ConditionStatus, ConditionType
from surge_operator.errors import BackupError, RestorePendingError
from surge_operator.handlers.reconcile import reconcile
from surge_operator.status import get_condition

RESTORING: dict[str, Any] = {
    **SPEC,
    "restoreFrom": {"target": {"pvc": {"claimName": "backups"}}, "cluster": "team-a/old"},
}


async def _reconcile(deps: Any) -> None:
    await reconcile(deps, REF, spec_raw=RESTORING, generation=1, raw_status={})


def _restored(deps: Any) -> tuple[ConditionStatus, str]:
    cond = get_condition(deps.registry.get(REF.uid).status.conditions, ConditionType.RESTORED)
    assert cond is not None
    return cond.status, cond.reason


def _finish_job(kube: FakeKube, type_: str) -> None:
    job = kube.objects[("Job", REF.namespace, f"{REF.name}-restore")]
    job["status"] = {"conditions": [{"type": type_, "status": "True", "reason": "Done"}]}


async def test_workers_and_streams_wait_for_the_restore_job() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    with pytest.raises(RestorePendingError):
        await _reconcile(deps)
    kinds = {k for k, _, _ in kube.objects}
    assert "Job" in kinds
    assert "Deployment" not in kinds
    assert {"ConfigMap", "ServiceAccount", "NetworkPolicy"} <= kinds
    assert js.provisioned == []
    assert _restored(deps) == (ConditionStatus.FALSE, "Restoring")


async def test_after_the_restore_the_cluster_starts_and_the_gate_is_done() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    with pytest.raises(RestorePendingError):
        await _reconcile(deps)
    _finish_job(kube, "Complete")
    await _reconcile(deps)
    assert "Deployment" in {k for k, _, _ in kube.objects}
    assert len(js.provisioned) == 1
    assert _restored(deps) == (ConditionStatus.TRUE, "RestoreSucceeded")
    status = deps.registry.get(REF.uid).status
    assert status.restore is not None
    assert status.restore.completed_time is not None
    # A deleted Job (ttl) must not start a second restore.
    kube.objects.pop(("Job", REF.namespace, f"{REF.name}-restore"))
    await _reconcile(deps)
    assert ("Job", REF.namespace, f"{REF.name}-restore") not in kube.objects


async def test_a_failed_restore_keeps_the_workers_off_and_backs_off() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    with pytest.raises(RestorePendingError):
        await _reconcile(deps)
    _finish_job(kube, "Failed")
    with pytest.raises(BackupError) as raised:
        await _reconcile(deps)
    assert raised.value.backoff
    assert "Deployment" not in {k for k, _, _ in kube.objects}
    assert _restored(deps) == (ConditionStatus.FALSE, "RestoreFailed")
    assert "RestoreFailed" in kube.reasons()


async def test_a_refused_restore_is_a_condition_naming_the_field() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    with pytest.raises(RestorePendingError):
        await _reconcile(deps)
    job = kube.objects[("Job", REF.namespace, f"{REF.name}-restore")]
    pod = f"{REF.name}-restore-ab12c"
    job["status"] = {
        "failed": 1,
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "PodFailurePolicy",
                "message": f"Container surge-backup for pod {REF.namespace}/{pod} failed with "
                "exit code 3 matching FailJob rule at index 0",
            }
        ],
    }
    why = "set spec.stream.subjectPrefix=support on the cluster restored into"
    kube.objects[("Pod", REF.namespace, pod)] = {
        "metadata": {"name": pod, "namespace": REF.namespace},
        "status": {
            "containerStatuses": [
                {"name": "surge-backup", "state": {"terminated": {"exitCode": 3, "message": why}}}
            ]
        },
    }
    with pytest.raises(BackupError, match="subjectPrefix"):
        await _reconcile(deps)
    assert _restored(deps) == (ConditionStatus.FALSE, "RestoreConflict")
    assert "Deployment" not in {k for k, _, _ in kube.objects}
    assert "RestoreConflict" in kube.reasons()
