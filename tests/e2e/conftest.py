"""Fixtures of the e2e tier on the session's real-node cluster (tests/fixtures/kube.py):

``surge_images``  session: the `make images` archives imported into every node once (the
                  local cluster; on kind `make e2e-load` did it), waited for on every node.
``cluster_nats``  a nats-server in the test's namespace (tests/e2e/cluster_nats.py), for
                  tests whose operator runs as a host process on a node.
"""

from __future__ import annotations

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import IMAGE, NATS_IMAGE, archives, kube_json, wait_for
from tests.e2e.cluster_nats import ClusterNats, require_real_nodes


def node_images(cluster: KubeCluster) -> list[set[str]]:
    """Per node, the image names its kubelet reports (kind and real kubelets alike)."""
    out = []
    for node in kube_json(cluster, "get", "nodes")["items"]:
        names = {n for img in node["status"].get("images") or [] for n in img["names"]}
        # Runtimes report fully qualified names; compare on the familiar short form too.
        out.append(names | {n.rsplit("/", 1)[-1] for n in names})
    return out


@pytest.fixture(scope="session")
def surge_images(node_cluster: KubeCluster) -> KubeCluster:
    if node_cluster.cluster is not None:
        node_cluster.load_images(archives())
    for image in (IMAGE, NATS_IMAGE):
        wait_for(
            f"{image} on every node",
            lambda image=image: all(image in names for names in node_images(node_cluster)),  # type: ignore[misc]
            timeout=90,
        )
    return node_cluster


@pytest.fixture
def cluster_nats(surge_images: KubeCluster, node_namespace: str) -> ClusterNats:
    """Goes with the namespace (node_namespace deletes it)."""
    require_real_nodes(surge_images)
    return ClusterNats(surge_images, node_namespace).deploy()
