"""`surge status | failback | drain-region` against a real API server: the JSON view of a
real object, the spec and annotation writes the operator acts on, the API server's own
refusal of a bad drain, and the exit codes (0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from surge_cluster.testing import KubeCluster
from tests.e2e.operator_support import install_crd

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STATUS: dict[str, Any] = {
    "phase": "Running",
    "observedGeneration": 1,
    "replicas": 3,
    "readyReplicas": 3,
    "desiredReplicas": 4,
    "degradationLevel": 1,
    "activeRegion": "west",
    "mirrorLag": 17,
    "history": [
        {"time": "2026-12-06T07:00:00Z", "kind": "failover", "from": "east", "to": "west",
         "reason": "east failed 3 probes"},
        {"time": "2026-12-06T07:00:05Z", "kind": "scale", "from": "3", "to": "4",
         "reason": "backlog 900 over 2 s target"},
    ],
}  # fmt: skip


def surge(
    cluster: KubeCluster, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "surge"), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.fixture
def cluster_object(node_cluster: KubeCluster, node_namespace: str) -> str:
    install_crd(node_cluster)
    manifest = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "MessagingCluster",
        "metadata": {"name": "support", "namespace": node_namespace},
        "spec": {
            "regions": [
                {"name": "east", "role": "primary", "nats": {"url": "nats://east:4222"}},
                {"name": "west", "role": "standby", "nats": {"url": "nats://west:4222"}},
            ],
            "gateway": {"enabled": False},
        },
    }
    node_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    node_cluster.kubectl(
        "patch", "mc", "support", "-n", node_namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": STATUS}),
    )  # fmt: skip
    return node_namespace


def get(cluster: KubeCluster, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        cluster.kubectl("get", "mc", "support", "-n", ns, "-o", "json").stdout
    )
    return obj


def operator_running(cluster: KubeCluster) -> bool:
    """A Surge operator in this cluster (e.g. the e2e tier's helm release) reconciles our
    object too and rewrites its status: the checks below then compare with what it wrote."""
    out = cluster.kubectl(
        "get", "deploy", "-A", "-l",
        "app.kubernetes.io/part-of=surge,app.kubernetes.io/component=operator", "-o", "json",
    ).stdout  # fmt: skip
    return any((d.get("status") or {}).get("readyReplicas") for d in json.loads(out)["items"])


def test_status_shows_the_real_objects_figures_and_decisions(
    node_cluster: KubeCluster, cluster_object: str
) -> None:
    result = surge(node_cluster, "status", "support", "-n", cluster_object, "-o", "json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    reasons = [d["reason"] for d in view["decisions"]]
    assert "east failed 3 probes" in reasons  # history is only ever appended to
    assert view["primaryRegion"] == "east"
    if operator_running(node_cluster):
        status = get(node_cluster, cluster_object)["status"]
        assert view["activeRegion"] in {status.get("activeRegion"), "east", "west"}
        return
    assert view["phase"] == "Running"
    assert view["replicas"] == {"current": 3, "ready": 3, "desired": 4}
    assert (view["activeRegion"], view["mirrorLag"]) == ("west", 17)
    assert reasons == ["backlog 900 over 2 s target", "east failed 3 probes"]
    table = surge(node_cluster, "status", "support", "-n", cluster_object)
    assert table.returncode == 0
    assert "failed over from east" in table.stdout
    as_yaml = surge(node_cluster, "status", "support", "-n", cluster_object, "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["degradationLevel"] == 1


def test_a_missing_cluster_exits_1_and_an_unknown_region_exits_2(
    node_cluster: KubeCluster, cluster_object: str
) -> None:
    missing = surge(node_cluster, "status", "nope", "-n", cluster_object)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    unknown = surge(node_cluster, "drain-region", "support", "north", "-n", cluster_object)
    assert unknown.returncode == 2
    assert "no region 'north'" in unknown.stderr


def test_drain_region_writes_the_spec_and_the_api_server_refuses_draining_all(
    node_cluster: KubeCluster, cluster_object: str
) -> None:
    ns = cluster_object
    result = surge(node_cluster, "drain-region", "support", "west", "-n", ns, "--no-wait")
    assert result.returncode == 0, result.stderr
    assert get(node_cluster, ns)["spec"]["drainedRegions"] == ["west"]
    # Past the CLI's own check, the CRD's CEL rule refuses it too.
    refused = node_cluster.kubectl(
        "patch", "mc", "support", "-n", ns, "--type=merge",
        "-p", '{"spec": {"drainedRegions": ["east", "west"]}}', check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "may not drain every region" in refused.stderr
    undo = surge(node_cluster, "drain-region", "support", "west", "-n", ns, "--undo", "--no-wait")
    assert undo.returncode == 0, undo.stderr
    assert "drainedRegions" not in get(node_cluster, ns)["spec"]


def test_failback_annotates_and_a_wait_without_an_operator_times_out(
    node_cluster: KubeCluster, cluster_object: str
) -> None:
    ns = cluster_object
    if operator_running(node_cluster):
        pytest.skip("an operator in this cluster carries the failback out at once")
    result = surge(node_cluster, "failback", "support", "-n", ns, "--no-wait")
    assert result.returncode == 0, result.stderr
    annotations = get(node_cluster, ns)["metadata"]["annotations"]
    assert annotations["surge.dev/failback"] == "requested"
    waited = surge(node_cluster, "failback", "support", "-n", ns, "--timeout", "2")
    assert waited.returncode == 1
    assert "timed out" in waited.stderr
