"""The operator against a real API server and a real nats-server: create, observe, update,
stay quiet when nothing changes, delete with the finalizer; bad input; scale subresource.

Runs `surge-operator` as a process scoped to the test's namespace, on a real node; NATS runs
in the namespace (tests/e2e/cluster_nats.py) and the worker and gateway pods run from the
image on the real kubelets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import IMAGE, rolled_out
from tests.e2e.cluster_nats import ClusterNats
from tests.e2e.operator_support import Clusters, OperatorProcess, eventually, install_crd, manifest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def operator(
    node_cluster: KubeCluster, node_namespace: str, cluster_nats: ClusterNats, tmp_path: Path
) -> Iterator[OperatorProcess]:
    install_crd(node_cluster)
    # Resync every 3 s so the no-op check below really sees reconciles with nothing to do.
    op = OperatorProcess(
        node_cluster, node_namespace, tmp_path, SURGE_RESYNC_SECONDS="3", SURGE_LOG_LEVEL="debug"
    ).start()
    try:
        yield op
    finally:
        code = op.stop()
        assert code in (0, None, -9), op.log()[-3000:]


@pytest.fixture
def clusters(node_cluster: KubeCluster, node_namespace: str) -> Clusters:
    return Clusters(node_cluster, node_namespace)


async def _streams(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return [s.config.name for s in await nc.jetstream().streams_info()]
    finally:
        await nc.close()


def streams(server: ClusterNats) -> list[str]:
    return server.run(_streams)


def resource_versions(clusters: Clusters, name: str) -> dict[str, str]:
    ns = clusters.namespace
    out = {"mc": clusters.get(name)["metadata"]["resourceVersion"]}  # type: ignore[index]
    out["worker"] = clusters.apps.read_namespaced_deployment(
        f"{name}-worker", ns
    ).metadata.resource_version
    out["config"] = clusters.core.read_namespaced_config_map(
        f"{name}-config", ns
    ).metadata.resource_version
    out["sa"] = clusters.core.read_namespaced_service_account(
        f"{name}-surge", ns
    ).metadata.resource_version
    return out


def test_lifecycle_create_observe_update_noop_delete(
    operator: OperatorProcess,
    clusters: Clusters,
    node_cluster: KubeCluster,
    node_namespace: str,
    cluster_nats: ClusterNats,
) -> None:
    clusters.core.create_namespaced_secret(
        node_namespace,
        {"metadata": {"name": "tenant-tokens"}, "stringData": {"tokens": '{"t1": ["tok-1"]}'}},
    )
    body = manifest(
        "life",
        cluster_nats.url,
        stream={"deletionPolicy": "delete"},
        gateway={"replicas": 1, "tokensSecret": {"name": "tenant-tokens", "key": "tokens"}},
    )
    clusters.create(body)

    eventually("Ready=True", lambda: clusters.is_true("life", "Ready"), timeout=180)
    mc = clusters.get("life")
    assert mc is not None
    status = mc["status"]
    assert status["observedGeneration"] == 1
    assert status["phase"] == "Running"
    assert {c["type"] for c in status["conditions"]} == {
        "Ready", "StreamReady", "WorkersReady", "Scaling", "Degraded", "FailedOver",
    }  # fmt: skip
    assert "kopf" not in status  # progress lives in annotations (a structural schema prunes it)
    assert mc["metadata"]["finalizers"] == ["surge.dev/finalizer"]
    assert "surge.dev/last-handled-configuration" in mc["metadata"]["annotations"]

    # every owned object, owned by the cluster
    got = json.loads(
        node_cluster.kubectl(
            "get", "deploy,sa,role,rolebinding,pdb,networkpolicy,cm", "-n", node_namespace,
            "-l", "app.kubernetes.io/instance=life", "-o", "json",
        ).stdout
    )  # fmt: skip
    kinds = sorted(item["kind"] for item in got["items"])
    assert kinds == [
        "ConfigMap", "Deployment", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
        "PodDisruptionBudget", "Role", "RoleBinding", "ServiceAccount",
    ]  # fmt: skip
    workers_ready = clusters.condition("life", "WorkersReady")
    assert workers_ready is not None
    assert "gateway 1/1 ready" in workers_ready["message"]
    for item in got["items"]:
        assert item["metadata"]["ownerReferences"][0]["uid"] == mc["metadata"]["uid"]
    stream = status["stream"]
    assert stream in streams(cluster_nats)
    for deployment in ("life-worker", "life-gateway"):  # real pods from the image, Ready
        eventually(
            f"{deployment} rolled out",
            lambda d=deployment: rolled_out(node_cluster, node_namespace, d, IMAGE),  # type: ignore[misc]
            timeout=180,
        )

    # a reconcile with nothing to do writes nothing: same resourceVersions after a resync
    before = resource_versions(clusters, "life")
    reconciles = len(operator.events("reconciled"))
    time.sleep(7)
    assert len(operator.events("reconciled")) >= reconciles + 2
    assert resource_versions(clusters, "life") == before

    # a spec change rolls out
    old_hash = clusters.deployment("life-worker").spec.template.metadata.annotations[
        "surge.dev/config-hash"
    ]
    clusters.patch_spec("life", {"workers": {"concurrency": 2}})
    eventually(
        "observedGeneration 2",
        lambda: (clusters.get("life") or {}).get("status", {}).get("observedGeneration") == 2,
    )
    new = clusters.deployment("life-worker")
    assert new.spec.template.metadata.annotations["surge.dev/config-hash"] != old_hash
    cm = clusters.core.read_namespaced_config_map("life-config", node_namespace)
    assert cm.data["SURGE_CONCURRENCY"] == "2"

    # delete: the finalizer deletes the stream (deletionPolicy: delete), then the object goes
    clusters.delete("life")
    eventually("MessagingCluster gone", lambda: clusters.get("life") is None, timeout=60)
    assert stream not in streams(cluster_nats)
    assert operator.events("finalized")


def test_unreachable_nats_and_missing_secret_are_conditions_not_crashes(
    operator: OperatorProcess, clusters: Clusters, cluster_nats: ClusterNats
) -> None:
    # A Service name nothing answers to: unreachable the way a wrong URL is.
    absent = f"nats://absent.{clusters.namespace}.svc.cluster.local:4222"
    clusters.create(manifest("nonats", absent))
    clusters.create(
        manifest(
            "nosecret",
            cluster_nats.url,
            regions=[
                {
                    "name": "east",
                    "role": "primary",
                    "nats": {
                        "url": cluster_nats.url,
                        "credentialsSecret": {"name": "nats-token", "key": "token"},
                    },
                }
            ],
        )
    )
    down = eventually(
        "StreamReady=False/NatsUnavailable",
        lambda: (
            (c := clusters.condition("nonats", "StreamReady"))
            and c["reason"] == "NatsUnavailable"
            and c
        ),
    )
    assert f"absent.{clusters.namespace}.svc" in down["message"]
    eventually(
        "StreamReady=False/CredentialsSecretMissing",
        lambda: (
            (c := clusters.condition("nosecret", "StreamReady"))
            and c["reason"] == "CredentialsSecretMissing"
        ),
    )
    assert operator.alive()
    # the Secret appears: the retry with back-off picks it up
    clusters.core.create_namespaced_secret(
        clusters.namespace,
        {"metadata": {"name": "nats-token"}, "stringData": {"token": "unused-by-this-server"}},
    )
    eventually("StreamReady=True", lambda: clusters.is_true("nosecret", "StreamReady"), timeout=60)
    assert clusters.is_true("nonats", "StreamReady") is False
    assert operator.alive()


def test_scale_subresource_sets_workers_when_autoscaling_is_off(
    operator: OperatorProcess,
    clusters: Clusters,
    node_cluster: KubeCluster,
    cluster_nats: ClusterNats,
) -> None:
    clusters.create(
        manifest("manual", cluster_nats.url, autoscaling={"enabled": False}, replicas=1)
    )
    eventually("Ready", lambda: clusters.is_true("manual", "Ready"), timeout=180)
    node_cluster.kubectl("scale", "-n", clusters.namespace, "mc/manual", "--replicas=3")
    eventually(
        "3 worker replicas",
        lambda: (d := clusters.deployment("manual-worker")) and d.spec.replicas == 3,
    )
    mc = clusters.get("manual")
    assert mc is not None
    scaling = clusters.condition("manual", "Scaling")
    assert scaling is not None
    assert scaling["reason"] == "AutoscalingDisabled"


def test_a_change_kubernetes_refuses_is_reported_on_status(
    operator: OperatorProcess, clusters: Clusters, cluster_nats: ClusterNats
) -> None:
    clusters.create(
        manifest(
            "refused",
            cluster_nats.url,
            workers={"resources": {"requests": {"cpu": "a-lot"}}},
        )
    )
    refused = eventually(
        "WorkersReady=False/KubernetesRejected",
        lambda: (
            (c := clusters.condition("refused", "WorkersReady"))
            and c["reason"] == "KubernetesRejected"
            and c
        ),
    )
    assert "quantities" in refused["message"]
    eventually("phase Error", lambda: (clusters.get("refused") or {})["status"]["phase"] == "Error")
    assert operator.alive()
    # fixing the spec clears it (a permanent error waits for exactly this)
    clusters.patch_spec("refused", {"workers": {"resources": {"requests": {"cpu": "100m"}}}})
    eventually("Ready", lambda: clusters.is_true("refused", "Ready"), timeout=180)
