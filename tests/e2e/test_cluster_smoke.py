"""Smoke test of the e2e tier on real nodes: the real API server admits the generated CRD and
its CEL rules, the controller manager and scheduler place a Deployment's pods on the node of
the right region where containerd runs them, garbage collection works, pods carry their
ServiceAccount's token and their Secret volumes, helm installs, admission policies apply.

Runs unchanged against kind (SURGE_E2E_KUBECONFIG) with the busybox test image loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge_cluster.images import BUSYBOX_IMAGE
from surge_cluster.testing import KubeCluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "messagingcluster.yaml"
EXAMPLE = ROOT / "examples" / "minimal.yaml"
INVALID = ROOT / "examples" / "invalid"
REGION = "topology.kubernetes.io/region"


@pytest.fixture(scope="module")
def crd(node_cluster: KubeCluster) -> str:
    if not CRD.exists():
        pytest.skip(f"{CRD.relative_to(ROOT)} not generated yet (surge crds)")
    node_cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    # kubectl wait can fail at once while discovery catches up with the new resource: retry.
    eventually(
        "the CRD to be Established",
        lambda: (
            node_cluster.kubectl(
                "wait", "--for=condition=Established", "--timeout=20s", "-f", str(CRD), check=False
            ).returncode
            == 0
        ),
        timeout=90,
    )
    return "messagingclusters.surge.dev"


def test_example_messaging_cluster_is_admitted(
    node_cluster: KubeCluster, crd: str, node_namespace: str
) -> None:
    node_cluster.kubectl("apply", "-n", node_namespace, "-f", str(EXAMPLE))

    got = json.loads(node_cluster.kubectl("get", "mc", "-n", node_namespace, "-o", "json").stdout)

    assert [item["metadata"]["name"] for item in got["items"]] == ["support"]


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("two-primaries.yaml", "exactly one region with role primary"),
        ("min-above-max.yaml", "minReplicas must be less than or equal to maxReplicas"),
        ("critical-sheddable.yaml", "critical may not be sheddable"),
        ("unknown-priority.yaml", 'spec.priorities[0].name: Unsupported value: "urgent"'),
    ],
)
def test_invalid_messaging_cluster_is_rejected_with_the_cel_message(
    node_cluster: KubeCluster, crd: str, node_namespace: str, example: str, message: str
) -> None:
    path = INVALID / example

    result = node_cluster.kubectl("apply", "-n", node_namespace, "-f", str(path), check=False)

    assert result.returncode != 0
    assert message in result.stderr


def http_deployment(name: str, replicas: int, region: str) -> dict[str, Any]:
    """A trivial HTTP server from the locally built test image, pinned to one region."""
    labels = {"app": name}
    container = {
        "name": "web",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {REGION: region},
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                },
            },
        },
    }


def ready_pods(core: Any, namespace: str, app: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def test_deployment_pods_run_in_their_region_as_containers_and_are_collected(
    node_cluster: KubeCluster, node_namespace: str
) -> None:
    api = node_cluster.api_client
    # Any: the typed client marks every field Optional; these tests read what they created.
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    ns = node_namespace

    apps.create_namespaced_deployment(ns, http_deployment("web", 2, "east"))
    pods = eventually(
        "2 ready pods", lambda: (p := ready_pods(core, ns, "web")) and len(p) == 2 and p
    )

    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels[REGION] == "east"
        assert pod.status.container_statuses[0].container_id.startswith("containerd://")
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
    eventually("3 ready pods", lambda: len(ready_pods(core, ns, "web")) == 3)

    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    eventually(
        "1 pod left", lambda: len(core.list_namespaced_pod(ns, label_selector="app=web").items) == 1
    )

    apps.delete_namespaced_deployment("web", ns, propagation_policy="Background")
    eventually("ReplicaSets collected", lambda: not apps.list_namespaced_replica_set(ns).items)
    eventually("pods collected", lambda: not core.list_namespaced_pod(ns).items)


def _idle_pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "c",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
    }
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **spec},
    }


def _running(core: Any, ns: str, name: str) -> bool:
    return bool(core.read_namespaced_pod(name, ns).status.phase == "Running")


def test_pods_carry_their_service_account_identity(
    node_cluster: KubeCluster, node_namespace: str
) -> None:
    core: Any = client.CoreV1Api(node_cluster.api_client)
    core.create_namespaced_pod(node_namespace, _idle_pod("whoami"))
    eventually("the pod to run", lambda: _running(core, node_namespace, "whoami"))
    token = node_cluster.kubectl(
        "exec", "-n", node_namespace, "whoami", "--",
        "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ).stdout  # fmt: skip

    # Ask the API server who that token is: the credentials the kubelet mounted are the pod's.
    review = client.AuthenticationV1Api(node_cluster.api_client).create_token_review(
        {"spec": {"token": token}}
    )

    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{node_namespace}:default"
    assert review.status.user.extra["authentication.kubernetes.io/pod-name"] == ["whoami"]


def test_helm_installs_and_uninstalls_a_release(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {k: {{ .Values.k }}}\n"
    )
    core: Any = client.CoreV1Api(node_cluster.api_client)

    node_cluster.helm(
        "install", "probe", str(chart), "-n", node_namespace, "--set", "k=v", "--wait"
    )
    assert core.read_namespaced_config_map("probe", node_namespace).data == {"k": "v"}
    node_cluster.helm("uninstall", "probe", "-n", node_namespace, "--wait")

    assert not core.list_namespaced_config_map(
        node_namespace, field_selector="metadata.name=probe"
    ).items


def test_validating_admission_policies_are_enforced(
    node_cluster: KubeCluster, node_namespace: str
) -> None:
    name = f"deny-forbidden-{node_namespace}"
    policy = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}
  validations:
  - expression: "object.metadata.name != 'forbidden'"
    message: "surge-e2e: this name is forbidden"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {node_namespace}}}
"""
    node_cluster.kubectl("apply", "-f", "-", input=policy)
    try:

        def denied() -> bool:
            result = node_cluster.kubectl(
                "create", "configmap", "forbidden", "-n", node_namespace, check=False
            )
            if result.returncode == 0:
                node_cluster.kubectl("delete", "configmap", "forbidden", "-n", node_namespace)
                return False
            return "surge-e2e: this name is forbidden" in result.stderr

        eventually("the policy to deny", denied, timeout=30)
        node_cluster.kubectl("create", "configmap", "allowed", "-n", node_namespace)
    finally:
        node_cluster.kubectl("delete", "-f", "-", input=policy, check=False)


def test_pods_see_their_secret_volumes_at_the_mounted_paths(
    node_cluster: KubeCluster, node_namespace: str
) -> None:
    core: Any = client.CoreV1Api(node_cluster.api_client)
    core.create_namespaced_secret(
        node_namespace, {"metadata": {"name": "tokens"}, "stringData": {"tokens": "t0ken"}}
    )
    pod = _idle_pod(
        "reader",
        volumes=[{"name": "t", "secret": {"secretName": "tokens"}}],
        container={"volumeMounts": [{"name": "t", "mountPath": "/etc/surge/tokens"}]},
    )
    core.create_namespaced_pod(node_namespace, pod)
    eventually("the pod to run", lambda: _running(core, node_namespace, "reader"))

    read = node_cluster.kubectl(
        "exec", "-n", node_namespace, "reader", "--", "cat", "/etc/surge/tokens/tokens"
    )

    assert read.stdout == "t0ken"
