"""The real API server enforces the CRD: every field's bounds and types (the generated
cases of tests/unit/surge_operator/crd_cases.py, server-side dry runs), the CEL rules the
schema cannot say (replicas in {1,3,5}, one violation per CEL rule), and the
transition rules that make stream name, subject prefix and storage immutable."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge_cluster.testing import KubeCluster
from tests.e2e.operator_support import install_crd
from tests.unit.surge_operator.crd_cases import BASE, RULE_CASES, Case, cases

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GROUP, VERSION, PLURAL = "surge.dev", "v1alpha1", "messagingclusters"


@pytest.fixture
def objects(node_cluster: KubeCluster) -> client.CustomObjectsApi:
    install_crd(node_cluster)
    return client.CustomObjectsApi(node_cluster.api_client)


def rejection(
    objects: client.CustomObjectsApi, namespace: str, body: dict[str, Any], *, dry_run: bool = True
) -> str | None:
    """The API server's error message, or None when it accepted the object."""
    try:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None
        )
    except ApiException as exc:
        failed = exc
    else:
        return None
    assert failed.status in (400, 422), failed.body
    return str(json.loads(failed.body or "{}").get("message", failed.body))


def test_every_generated_invalid_field_is_rejected_naming_it(
    objects: client.CustomObjectsApi, node_namespace: str
) -> None:
    assert rejection(objects, node_namespace, copy.deepcopy(BASE)) is None
    missed: list[str] = []
    tried: list[Case] = list(cases())
    for case in tried:
        message = rejection(objects, node_namespace, case.manifest())
        if message is None:
            missed.append(f"{case.id}: accepted")
        elif case.dotted not in message:
            missed.append(f"{case.id}: {message[:200]}")
    print(f"\n{len(tried)} invalid field values tried against the API server, {len(missed)} missed")
    assert missed == []


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("spec", "stream", "replicas"), 2, "spec.stream.replicas: Unsupported value: 2"),
        (("spec", "stream", "replicas"), 4, "spec.stream.replicas: Unsupported value: 4"),
    ],
)
def test_what_the_schema_cannot_say(
    objects: client.CustomObjectsApi,
    node_namespace: str,
    path: tuple[str | int, ...],
    value: Any,
    words: str,
) -> None:
    message = rejection(objects, node_namespace, Case(path, value, "x").manifest())
    assert message is not None
    assert words in message


def test_every_rule_across_fields_is_enforced_with_its_message(
    objects: client.CustomObjectsApi, node_namespace: str
) -> None:
    """One violation per CEL rule (tests/unit/surge_operator/crd_cases.RULE_CASES; a unit
    test fails when a rule of the CRD has none)."""
    missed: list[str] = []
    for case in RULE_CASES:
        message = rejection(objects, node_namespace, case.manifest())
        if message is None or case.message not in message:
            missed.append(f"{case.name}: {message}")
    print(f"\n{len(RULE_CASES)} CEL rule violations tried against the API server")
    assert missed == []


@pytest.fixture
def stored(objects: client.CustomObjectsApi, node_namespace: str) -> str:
    body = copy.deepcopy(BASE)
    body["metadata"] = {"name": "immutable"}
    body["spec"]["stream"] = {"name": "ORDERS", "subjectPrefix": "support", "storage": "file"}
    assert rejection(objects, node_namespace, body, dry_run=False) is None
    return "immutable"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "OTHER"}, "spec.stream.name is immutable"),
        ({"name": None}, "spec.stream.name is immutable"),
        ({"subjectPrefix": "elsewhere"}, "spec.stream.subjectPrefix is immutable"),
        ({"storage": "memory"}, "spec.stream.storage is immutable"),
    ],
)
def test_stream_identity_is_immutable(
    objects: client.CustomObjectsApi,
    node_namespace: str,
    stored: str,
    change: dict[str, Any],
    words: str,
) -> None:
    with pytest.raises(ApiException) as caught:
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, node_namespace, PLURAL, stored, {"spec": {"stream": change}}
        )
    assert words in str(caught.value.body)


def test_mutable_stream_fields_still_change(
    objects: client.CustomObjectsApi, node_namespace: str, stored: str
) -> None:
    patched = objects.patch_namespaced_custom_object(
        GROUP, VERSION, node_namespace, PLURAL, stored, {"spec": {"stream": {"partitions": 32}}}
    )
    assert isinstance(patched, dict)
    assert patched["spec"]["stream"]["partitions"] == 32
