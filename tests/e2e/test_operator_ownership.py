"""No confused deputy, against a real API server: a MessagingCluster whose owned objects'
names are already taken by someone else's objects does not take them over. The foreign
object keeps its content and gets no owner reference (so garbage collection can never
delete it with the MessagingCluster), and the conflict is a condition naming the object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster_nats import ClusterNats
from tests.e2e.operator_support import (
    Clusters,
    OperatorProcess,
    eventually,
    install_crd,
    manifest,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def clusters(node_cluster: KubeCluster, node_namespace: str) -> Clusters:
    install_crd(node_cluster)
    return Clusters(node_cluster, node_namespace)


@pytest.fixture
def operator(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    try:
        yield op
    finally:
        op.stop()


def test_a_foreign_object_with_an_owned_name_is_left_alone_and_reported(
    clusters: Clusters,
    node_namespace: str,
    operator: OperatorProcess,
    cluster_nats: ClusterNats,
) -> None:
    # Someone's own ConfigMap happens to carry the name Surge gives the cluster's config.
    clusters.core.create_namespaced_config_map(
        node_namespace,
        {"metadata": {"name": "taken-config"}, "data": {"mine": "keep me"}},  # type: ignore[arg-type]
    )
    eventually("leadership", lambda: operator.events("leader_elected"), timeout=30)
    clusters.create(manifest("taken", cluster_nats.url))

    def reported() -> bool:
        cond = clusters.condition("taken", "WorkersReady") or {}
        return cond.get("reason") == "ObjectNotOwned"

    eventually("ObjectNotOwned", reported, timeout=60)
    cond = clusters.condition("taken", "WorkersReady") or {}
    assert f"ConfigMap {node_namespace}/taken-config" in cond["message"]
    assert not clusters.is_true("taken", "Ready")
    foreign = clusters.core.read_namespaced_config_map("taken-config", node_namespace)
    assert foreign.data == {"mine": "keep me"}
    assert not foreign.metadata.owner_references
