"""reconcile() and finalize() against fakes: idempotence, conditions, errors, events."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from handler_fakes import REF, SPEC, FakeJetStream, FakeKube, make_deps

from surge_operator.api import ConditionStatus, ConditionType, Phase
from surge_operator.errors import (
    CredentialsSecretMissingError,
    InvalidSpecError,
    KubeRejectedError,
    NatsUnavailableError,
)
from surge_operator.handlers import lifecycle
from surge_operator.handlers.lifecycle import to_kopf
from surge_operator.handlers.reconcile import finalize, reconcile
from surge_operator.status import get_condition


async def _reconcile(deps: Any, spec: dict[str, Any] = SPEC, generation: int = 1) -> None:
    await reconcile(deps, REF, spec_raw=spec, generation=generation, raw_status={})


def _condition(deps: Any, type_: ConditionType) -> tuple[ConditionStatus, str]:
    cs = deps.registry.get(REF.uid)
    cond = get_condition(cs.status.conditions, type_)
    assert cond is not None
    return cond.status, cond.reason


async def test_first_reconcile_creates_everything_and_reports_it() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    await _reconcile(deps)
    kinds = {k for k, _, _ in kube.objects}
    assert kinds == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert [c.stream for c in js.provisioned] == ["SURGE_TEAM-A_SUPPORT"]
    assert _condition(deps, ConditionType.STREAM_READY) == (
        ConditionStatus.TRUE,
        "StreamProvisioned",
    )
    # the first write initialises every condition, the last one carries the outcome
    first, last = kube.status_patches[0], kube.status_patches[-1]
    assert {c["status"] for c in first["conditions"]} == {"Unknown"}
    assert last["observedGeneration"] == 1
    assert last["stream"] == "SURGE_TEAM-A_SUPPORT"
    assert last["selector"] == (
        "app.kubernetes.io/component=worker,app.kubernetes.io/instance=support,"
        "app.kubernetes.io/name=surge"
    )
    assert "StreamProvisioned" in kube.reasons()


async def test_new_worker_deployment_starts_at_min_and_the_autoscaler_co_owns_replicas() -> None:
    kube = FakeKube()
    deps = make_deps(kube)
    await _reconcile(deps, {**SPEC, "autoscaling": {"minReplicas": 3, "maxReplicas": 9}})
    worker_applies = [
        (manager, obj["spec"].get("replicas"))
        for manager, obj in kube.applies
        if obj["metadata"]["name"] == "support-worker" and obj["kind"] == "Deployment"
    ]
    assert worker_applies == [
        ("surge-operator", 3),  # created at the right size
        ("surge-autoscaler", 3),  # the autoscaler's manager co-owns the count
        ("surge-operator", None),  # and the structural manager lets go of it
    ]


async def test_a_second_reconcile_without_changes_writes_no_status_and_no_events() -> None:
    kube = FakeKube()
    deps = make_deps(kube)
    await _reconcile(deps)
    patches, events, objects = len(kube.status_patches), len(kube.events), dict(kube.objects)
    await _reconcile(deps)
    assert len(kube.status_patches) == patches
    assert len(kube.events) == events
    assert kube.objects == objects


async def test_missing_credentials_secret_is_a_condition_and_a_retry_not_a_crash() -> None:
    kube = FakeKube()
    deps = make_deps(kube)
    spec = {
        **SPEC,
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {"url": "nats://n:4222", "credentialsSecret": {"name": "creds"}},
            }
        ],
    }
    with pytest.raises(CredentialsSecretMissingError):
        await _reconcile(deps, spec)
    assert _condition(deps, ConditionType.STREAM_READY) == (
        ConditionStatus.FALSE,
        "CredentialsSecretMissing",
    )
    assert ("Deployment", "team-a", "support-worker") in kube.objects  # applied anyway
    assert kube.reasons().count("CredentialsSecretMissing") == 1
    with pytest.raises(CredentialsSecretMissingError):
        await _reconcile(deps, spec)
    assert kube.reasons().count("CredentialsSecretMissing") == 1  # reported once
    kube.secrets["creds"] = {"creds": b"-----BEGIN NATS USER JWT-----"}
    await _reconcile(deps, spec)
    assert _condition(deps, ConditionType.STREAM_READY)[0] is ConditionStatus.TRUE


async def test_unreachable_nats_keeps_kubernetes_objects_and_reports_the_reason() -> None:
    js = FakeJetStream()
    js.fail = NatsUnavailableError("cannot connect to NATS at nats://n:4222")
    deps = make_deps(js=js)
    with pytest.raises(NatsUnavailableError):
        await _reconcile(deps)
    assert _condition(deps, ConditionType.STREAM_READY) == (
        ConditionStatus.FALSE,
        "NatsUnavailable",
    )
    assert _condition(deps, ConditionType.READY)[0] is ConditionStatus.FALSE
    assert deps.registry.get(REF.uid).status.phase is Phase.PROVISIONING


async def test_invalid_spec_is_permanent_and_visible() -> None:
    kube = FakeKube()
    deps = make_deps(kube)
    with pytest.raises(InvalidSpecError) as err:
        await _reconcile(deps, {"regions": []})
    assert "spec.regions" in err.value.message
    assert deps.registry.get(REF.uid).status.phase is Phase.ERROR
    assert kube.reasons() == ["InvalidSpec"]
    assert isinstance(to_kopf(err.value, retry=0), kopf.PermanentError)


async def test_a_change_kubernetes_refuses_is_reported_on_status() -> None:
    kube = FakeKube()
    kube.fail_apply = KubeRejectedError("Deployment is invalid: spec.template...", status=422)
    deps = make_deps(kube)
    with pytest.raises(KubeRejectedError):
        await _reconcile(deps)
    assert _condition(deps, ConditionType.WORKERS_READY) == (
        ConditionStatus.FALSE,
        "KubernetesRejected",
    )
    assert deps.registry.get(REF.uid).status.phase is Phase.ERROR


def test_temporary_errors_back_off_exponentially_up_to_a_cap() -> None:
    exc = NatsUnavailableError("down")
    delays = [to_kopf(exc, retry=r, cap=60).delay for r in range(6)]  # type: ignore[attr-defined]
    assert delays == [5, 10, 20, 40, 60, 60]


async def test_finalizer_retains_the_stream_by_default() -> None:
    js = FakeJetStream()
    deps = make_deps(js=js)
    await _reconcile(deps)
    result = await finalize(deps, REF, spec_raw=SPEC, retry=0)
    assert "retained" in result
    assert js.deleted == []
    assert deps.registry.get(REF.uid) is None


async def test_finalizer_deletes_the_stream_when_asked() -> None:
    js = FakeJetStream()
    deps = make_deps(js=js)
    spec = {**SPEC, "stream": {"deletionPolicy": "delete"}}
    await _reconcile(deps, spec)
    await finalize(deps, REF, spec_raw=spec, retry=0)
    assert js.deleted == ["SURGE_TEAM-A_SUPPORT"]


async def test_a_resync_reconciles_from_the_object_as_kopf_hands_it_over() -> None:
    kube, js = FakeKube(), FakeJetStream()
    deps = make_deps(kube, js)
    meta = {"name": REF.name, "namespace": REF.namespace, "uid": REF.uid, "generation": 4}
    body = kopf.Body({"metadata": meta, "spec": SPEC, "status": {}})
    await lifecycle._resync(deps, REF, body)
    assert [c.stream for c in js.provisioned] == ["SURGE_TEAM-A_SUPPORT"]
    assert kube.status_patches[-1]["observedGeneration"] == 4
