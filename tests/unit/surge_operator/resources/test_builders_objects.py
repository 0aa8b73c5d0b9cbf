"""The ordered set of owned objects, and what every one of them shares."""

from __future__ import annotations

from typing import Any

from builder_support import MINIMAL, make_ctx

from surge_operator.resources import ObjectRef, desired_objects, obsolete_objects, ref_of

WITH_GATEWAY: dict[str, Any] = {
    **MINIMAL,
    "gateway": {"tokensSecret": {"name": "tokens", "key": "tokens"}},
}


def test_identity_and_config_come_before_the_deployments_that_reference_them() -> None:
    kinds = [o["kind"] for o in desired_objects(make_ctx(WITH_GATEWAY))]
    assert kinds == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]


def test_every_object_is_owned_by_the_cluster_and_carries_the_standard_labels() -> None:
    for obj in desired_objects(make_ctx(WITH_GATEWAY)):
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "surge.dev/v1alpha1",
                "kind": "MessagingCluster",
                "name": "support",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "surge"
        assert labels["app.kubernetes.io/instance"] == "support"
        assert labels["app.kubernetes.io/managed-by"] == "surge-operator"
        assert labels["app.kubernetes.io/part-of"] == "surge"
        assert "app.kubernetes.io/component" in labels


def test_object_names_are_unique_per_kind() -> None:
    refs = [ref_of(o) for o in desired_objects(make_ctx(WITH_GATEWAY))]
    assert len({(r.kind, r.name) for r in refs}) == len(refs)


def test_gateway_without_tokens_is_not_deployed_and_is_cleaned_up() -> None:
    ctx = make_ctx()
    assert all(not o["metadata"]["name"].endswith("-gateway") for o in desired_objects(ctx))
    assert obsolete_objects(ctx) == [
        ObjectRef("apps/v1", "Deployment", "team-a", "support-gateway"),
        ObjectRef("v1", "Service", "team-a", "support-gateway"),
        ObjectRef("policy/v1", "PodDisruptionBudget", "team-a", "support-gateway"),
    ]


def test_disabled_gateway_is_removed() -> None:
    ctx = make_ctx({**WITH_GATEWAY, "gateway": {"enabled": False}})
    assert [r.kind for r in obsolete_objects(ctx)] == [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]


def test_builders_are_deterministic() -> None:
    assert desired_objects(make_ctx(WITH_GATEWAY)) == desired_objects(make_ctx(WITH_GATEWAY))


def test_long_names_give_valid_label_values() -> None:
    ctx = make_ctx(name="x" * 120)
    for obj in desired_objects(ctx):
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
