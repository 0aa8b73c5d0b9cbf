"""Smoke test of the e2e tier: the real API server admits the generated CRD and its CEL rules,
the controller manager and scheduler place a Deployment's pods on nodes of the right region,
the pod runner (local control plane) runs them as processes, and garbage collection works.

Runs unchanged against kind (SURGE_E2E_KUBECONFIG); the process checks only apply locally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge_cluster.procs import is_alive
from surge_cluster.testing import KubeCluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "messagingcluster.yaml"
EXAMPLE = ROOT / "examples" / "minimal.yaml"
INVALID = ROOT / "examples" / "invalid"
REGION = "topology.kubernetes.io/region"


@pytest.fixture(scope="module")
def crd(kube_cluster: KubeCluster) -> str:
    if not CRD.exists():
        pytest.skip(f"{CRD.relative_to(ROOT)} not generated yet (surge crds)")
    kube_cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    kube_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD))
    return "messagingclusters.surge.dev"


def test_example_messaging_cluster_is_admitted(
    kube_cluster: KubeCluster, crd: str, kube_namespace: str
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(EXAMPLE))

    got = json.loads(kube_cluster.kubectl("get", "mc", "-n", kube_namespace, "-o", "json").stdout)

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
    kube_cluster: KubeCluster, crd: str, kube_namespace: str, example: str, message: str
) -> None:
    path = INVALID / example

    result = kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(path), check=False)

    assert result.returncode != 0
    assert message in result.stderr


def http_deployment(name: str, replicas: int, region: str) -> dict[str, Any]:
    """A trivial HTTP server pinned to one region and marked for the local pod runner."""
    labels = {"app": name}
    container = {
        "name": "web",
        "image": "python:3.11-slim",
        "command": ["python", "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
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
                "metadata": {"labels": {**labels, "surge.dev/run-local": "true"}},
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


def local_pids(kube_cluster: KubeCluster, namespace: str) -> set[int]:
    return {p.record.pid for p in kube_cluster.local_processes(namespace)}


def test_deployment_pods_run_in_their_region_as_local_processes_and_are_collected(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    api = kube_cluster.api_client
    # Any: the typed client marks every field Optional; these tests read what they created.
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    ns = kube_namespace

    apps.create_namespaced_deployment(ns, http_deployment("web", 2, "east"))
    pods = eventually(
        "2 ready pods", lambda: (p := ready_pods(core, ns, "web")) and len(p) == 2 and p
    )

    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels[REGION] == "east"
    if kube_cluster.local:
        pids = eventually("2 local processes", lambda: len(local_pids(kube_cluster, ns)) == 2)
        container_pids = {
            int(p.status.container_statuses[0].container_id.rsplit("/", 1)[1]) for p in pods
        }
        assert container_pids == local_pids(kube_cluster, ns)
        assert all(is_alive(pid) for pid in container_pids)
        del pids

    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
    eventually("3 ready pods", lambda: len(ready_pods(core, ns, "web")) == 3)
    if kube_cluster.local:
        eventually("3 local processes", lambda: len(local_pids(kube_cluster, ns)) == 3)

    before = local_pids(kube_cluster, ns)
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    eventually(
        "1 pod left", lambda: len(core.list_namespaced_pod(ns, label_selector="app=web").items) == 1
    )
    if kube_cluster.local:
        eventually("1 local process", lambda: len(local_pids(kube_cluster, ns)) == 1)
        assert sum(is_alive(pid) for pid in before) == 1

    apps.delete_namespaced_deployment("web", ns, propagation_policy="Background")
    eventually("ReplicaSets collected", lambda: not apps.list_namespaced_replica_set(ns).items)
    eventually("pods collected", lambda: not core.list_namespaced_pod(ns).items)
    if kube_cluster.local:
        assert not local_pids(kube_cluster, ns)
        assert not any(is_alive(pid) for pid in before)


WHOAMI = """
from kubernetes import client, config
config.load_kube_config()
review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
who = client.AuthenticationV1Api().create_self_subject_review(review)
print("user:", who.status.user_info.username, flush=True)
time.sleep(600)
"""


def test_local_pod_processes_act_as_their_service_account(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    if not kube_cluster.local:
        pytest.skip("the pod runner only exists on the local control plane")
    core: Any = client.CoreV1Api(kube_cluster.api_client)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whoami", "labels": {"surge.dev/run-local": "true"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "python", "command": ["python", "-c", WHOAMI]}],
        },
    }
    core.create_namespaced_pod(kube_namespace, pod)

    log = eventually(
        "the pod's output",
        lambda: "user:" in (out := kube_cluster.local_log(kube_namespace, "whoami", "c")) and out,
    )

    assert f"user: system:serviceaccount:{kube_namespace}:default" in log


def test_helm_installs_and_uninstalls_a_release(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {k: {{ .Values.k }}}\n"
    )
    core: Any = client.CoreV1Api(kube_cluster.api_client)

    kube_cluster.helm(
        "install", "probe", str(chart), "-n", kube_namespace, "--set", "k=v", "--wait"
    )
    assert core.read_namespaced_config_map("probe", kube_namespace).data == {"k": "v"}
    kube_cluster.helm("uninstall", "probe", "-n", kube_namespace, "--wait")

    assert not core.list_namespaced_config_map(
        kube_namespace, field_selector="metadata.name=probe"
    ).items


def test_validating_admission_policies_are_enforced(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    name = f"deny-forbidden-{kube_namespace}"
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
      matchLabels: {{kubernetes.io/metadata.name: {kube_namespace}}}
"""
    kube_cluster.kubectl("apply", "-f", "-", input=policy)
    try:

        def denied() -> bool:
            result = kube_cluster.kubectl(
                "create", "configmap", "forbidden", "-n", kube_namespace, check=False
            )
            if result.returncode == 0:
                kube_cluster.kubectl("delete", "configmap", "forbidden", "-n", kube_namespace)
                return False
            return "surge-e2e: this name is forbidden" in result.stderr

        eventually("the policy to deny", denied, timeout=30)
        kube_cluster.kubectl("create", "configmap", "allowed", "-n", kube_namespace)
    finally:
        kube_cluster.kubectl("delete", "-f", "-", input=policy, check=False)


def test_local_pods_see_their_secret_volumes_at_the_mounted_paths(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    if not kube_cluster.local:
        pytest.skip("the pod runner only exists on the local control plane")
    core: Any = client.CoreV1Api(kube_cluster.api_client)
    core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "tokens"}, "stringData": {"tokens": "t0ken"}}
    )
    read = "import os, time; print('read:', open(os.environ['FILE']).read(), flush=True); time.sleep(600)"  # noqa: E501
    pod = {
        "metadata": {"name": "reader", "labels": {"surge.dev/run-local": "true"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "t", "secret": {"secretName": "tokens"}}],
            "containers": [
                {
                    "name": "c",
                    "image": "python",
                    "command": ["python", "-c", read],
                    "env": [{"name": "FILE", "value": "/etc/surge/tokens/tokens"}],
                    "volumeMounts": [{"name": "t", "mountPath": "/etc/surge/tokens"}],
                }
            ],
        },
    }
    core.create_namespaced_pod(kube_namespace, pod)

    log = eventually(
        "the pod's output",
        lambda: "read:" in (out := kube_cluster.local_log(kube_namespace, "reader", "c")) and out,
    )

    assert "read: t0ken" in log
