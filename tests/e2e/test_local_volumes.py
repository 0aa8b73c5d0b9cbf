"""Dynamic volumes on real nodes: a claim of the default StorageClass `standard` gets a
node-local volume once its pod is scheduled, a non-root pod writes to it (fsGroup), the
data outlives the pod, and deleting the claim removes the volume and its directory.

Runs on kind too (its own `standard` class, local-path provisioner); the host directory is
checked only on the local cluster, where the test can see the node's disk.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge_cluster.images import BUSYBOX_IMAGE
from surge_cluster.netplan import cluster_id
from surge_cluster.nodeconfig import NodePaths
from surge_cluster.nodepool import NODE_STATE_ROOT
from surge_cluster.testing import KubeCluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FS_GROUP = 2000
"""Not the user's own group: only fsGroup can give the pod write access to the volume."""


def claim(name: str) -> dict[str, Any]:
    # No storageClassName: the default class must be applied by admission.
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }


def data_pod(name: str, claim_name: str, script: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"fsGroup": FS_GROUP},
            "containers": [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def run_to_completion(core: Any, ns: str, manifest: dict[str, Any]) -> tuple[Any, str]:
    """Create the pod, wait (bounded) until it ended, return it and its log."""
    core.create_namespaced_pod(ns, manifest)
    name = manifest["metadata"]["name"]
    done = eventually(
        f"pod {name} finished",
        lambda: (
            (p := core.read_namespaced_pod(name, ns)).status.phase in ("Succeeded", "Failed") and p
        ),
        timeout=180,
    )
    output = core.read_namespaced_pod_log(name, ns)
    assert done.status.phase == "Succeeded", output
    return done, output


def node_volume_dir(cluster: KubeCluster, node: str) -> Path:
    assert cluster.cluster is not None
    return NodePaths(NODE_STATE_ROOT / cluster_id(cluster.cluster.root) / node).volumes


def test_a_claim_gets_a_node_local_volume_that_outlives_its_pod_and_goes_with_the_claim(
    node_cluster: KubeCluster, node_namespace: str
) -> None:
    core: Any = client.CoreV1Api(node_cluster.api_client)
    storage: Any = client.StorageV1Api(node_cluster.api_client)
    ns = node_namespace
    token = uuid.uuid4().hex
    defaults = [
        sc
        for sc in storage.list_storage_class().items
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert [(sc.metadata.name, sc.volume_binding_mode) for sc in defaults] == [
        ("standard", "WaitForFirstConsumer")
    ]

    core.create_namespaced_persistent_volume_claim(ns, claim("data"))
    pending = core.read_namespaced_persistent_volume_claim("data", ns)
    assert pending.spec.storage_class_name == "standard"
    assert pending.status.phase == "Pending"  # no consumer yet

    writer, _ = run_to_completion(
        core, ns, data_pod("writer", "data", f"echo {token} > /data/msg && ls -ln /data/msg")
    )
    bound = core.read_namespaced_persistent_volume_claim("data", ns)
    volume = core.read_persistent_volume(bound.spec.volume_name)
    assert bound.status.phase == "Bound"
    assert volume.spec.persistent_volume_reclaim_policy == "Delete"
    host_dir: Path | None = None
    if node_cluster.cluster is not None:  # the local cluster: the node's disk is ours to see
        host_dir = Path(volume.spec.local.path)
        assert host_dir.parent == node_volume_dir(node_cluster, writer.spec.node_name)
        assert (host_dir / "msg").read_text().strip() == token
        assert host_dir.stat().st_gid == FS_GROUP

    core.delete_namespaced_pod("writer", ns, grace_period_seconds=0)
    eventually("writer pod gone", lambda: not core.list_namespaced_pod(ns).items, timeout=120)
    reader, output = run_to_completion(core, ns, data_pod("reader", "data", "cat /data/msg"))

    assert output.strip() == token
    assert reader.spec.node_name == writer.spec.node_name

    core.delete_namespaced_pod("reader", ns, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("data", ns)

    def volume_gone() -> bool:
        return volume.metadata.name not in {
            v.metadata.name for v in core.list_persistent_volume().items
        }

    eventually(f"volume {volume.metadata.name} deleted", volume_gone, timeout=180)
    if host_dir is not None:
        assert not host_dir.exists()
