"""Backups and restore on real nodes, through the chart-installed operator.

A MessagingCluster backs up to a PersistentVolumeClaim every minute (its CronJob's pod runs
the Surge image with the backup NATS user); after the backup reports success the cluster is
deleted with `deletionPolicy: delete` (its streams go), and a new MessagingCluster created
with `spec.restoreFrom` gets every message back before its workers start. Pods, cluster DNS
and `kubectl` only: nothing touches the host's loopback.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import (
    IMAGE,
    NATS_URL,
    archives,
    install_release,
    kube_json,
    run_client,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = 40
CLAIM = "backups"


@pytest.fixture(scope="module")
def cluster(node_cluster: KubeCluster) -> KubeCluster:
    if getattr(node_cluster, "cluster", None) is not None:
        node_cluster.load_images(archives())
    install_release(node_cluster)
    return node_cluster


@pytest.fixture
def backup_ns(cluster: KubeCluster) -> Iterator[str]:
    """A namespace with a 1 GiB volume whose directory the non-root backup pods may write."""
    ns = f"e2e-bk-{uuid.uuid4().hex[:6]}"
    node = kube_json(cluster, "get", "nodes")["items"][0]["metadata"]["name"]
    pv = f"{ns}-pv"
    cluster.kubectl("create", "namespace", ns)
    manifests: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "surge-e2e-manual",
                "hostPath": {"path": f"/var/tmp/surge-e2e/{ns}", "type": "DirectoryOrCreate"},
                # one node's disk: backup and restore pods must both land where the data is
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CLAIM, "namespace": ns},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "surge-e2e-manual",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    for body in manifests:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    _make_writable(cluster, ns)
    try:
        yield ns
    finally:
        for name in ("bk", "bk-restored"):
            cluster.kubectl(
                "patch", "messagingcluster", name, "-n", ns, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", pv, "--wait=false", check=False)


def _make_writable(cluster: KubeCluster, ns: str) -> None:
    """hostPath volumes ignore fsGroup: a one-off root pod opens the directory to uid 65532."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "prepare-volume", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "chown",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["chown", "65532:65532", "/backup"],
                    "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
                    "volumeMounts": [{"name": "b", "mountPath": "/backup"}],
                }
            ],
            "volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    wait_for(
        "the volume to be prepared",
        lambda: (
            kube_json(cluster, "get", "pod", "prepare-volume", "-n", ns)["status"].get("phase")
            == "Succeeded"
        ),
        timeout=120,
    )


def _cluster(name: str, ns: str, stream: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "MessagingCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "regions": [{"name": "east", "role": "primary", "nats": {"url": NATS_URL}}],
            "stream": {"name": stream, "subjectPrefix": stream.lower(), "deletionPolicy": "delete"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
            "gateway": {"enabled": False},
            **extra,
        },
    }


def _status(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    obj = kube_json(cluster, "get", "messagingcluster", name, "-n", ns)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def _condition(cluster: KubeCluster, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    for cond in _status(cluster, ns, name).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


PUBLISH = """
import asyncio, nats, time
from surge_workers.contract import Priority, format_enqueued_at, message_headers, message_subject
async def main():
    nc = await nats.connect("{url}")
    js = nc.jetstream()
    for i in range({n}):
        headers = message_headers(
            tenant="acme", msg_id=f"bk-{{i}}", conversation_id=f"c{{i % 5}}",
            priority=Priority.NORMAL, enqueued_at=format_enqueued_at(time.time()))
        subject = message_subject("{prefix}", Priority.NORMAL, f"c{{i % 5}}", 16, tenant="acme")
        await js.publish(subject, b'{{"text": "hi"}}', headers=headers)
    await nc.close()
    print("published", {n})
asyncio.run(main())
"""

COUNT = """
import asyncio, nats
async def main():
    nc = await nats.connect("{url}")
    info = await nc.jetstream().stream_info("{stream}")
    print("messages", info.state.messages, "last_seq", info.state.last_seq)
    await nc.close()
asyncio.run(main())
"""


def test_a_backup_on_a_volume_brings_every_message_back_into_a_new_cluster(
    cluster: KubeCluster, backup_ns: str
) -> None:
    ns = backup_ns
    stream = f"E2E_BK_{uuid.uuid4().hex[:6].upper()}"
    backup = {
        "backup": {"schedule": "* * * * *", "retention": 2, "target": {"pvc": {"claimName": CLAIM}}}
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_cluster("bk", ns, stream, backup)))
    wait_for(
        "the stream to be provisioned",
        lambda: (_condition(cluster, ns, "bk", "StreamReady") or {}).get("status") == "True",
        timeout=180,
    )
    published = run_client(
        cluster, ns, PUBLISH.format(url=NATS_URL, n=MESSAGES, prefix=stream.lower()),
        labels={"app.kubernetes.io/name": "surge", "app.kubernetes.io/instance": "bk"},
    )  # fmt: skip
    assert published.phase == "Succeeded", published.log

    # The CronJob runs every minute; the operator reads the run's record every 30 s.
    status = wait_for(
        "a successful backup in status",
        lambda: (_status(cluster, ns, "bk").get("backup") or {}).get("lastSuccessfulBackup"),
        timeout=300,
    )
    assert status
    backed_up = _condition(cluster, ns, "bk", "BackedUp")
    assert backed_up is not None
    assert backed_up["status"] == "True", backed_up

    cluster.kubectl("delete", "messagingcluster", "bk", "-n", ns, "--timeout=120s")

    restore = {
        "restoreFrom": {
            "target": {"pvc": {"claimName": CLAIM}},
            "cluster": f"{ns}/bk",
            "backup": "latest",
        }
    }
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(_cluster("bk-restored", ns, stream, restore))
    )
    restored = wait_for(
        "the new cluster to be restored",
        lambda: (
            (_condition(cluster, ns, "bk-restored", "Restored") or {}).get("status") == "True"
            or None
        ),
        timeout=300,
    )
    assert restored
    counted = run_client(
        cluster, ns, COUNT.format(url=NATS_URL, stream=stream),
        labels={"app.kubernetes.io/name": "surge", "app.kubernetes.io/instance": "bk-restored"},
    )  # fmt: skip
    assert counted.phase == "Succeeded", counted.log
    assert f"messages {MESSAGES} last_seq {MESSAGES}" in counted.log
    workers = kube_json(cluster, "get", "deployment", "bk-restored-worker", "-n", ns)
    assert workers["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
