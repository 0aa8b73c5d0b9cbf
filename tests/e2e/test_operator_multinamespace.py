"""Multi-namespace mode (`operator.clusterWide=false`, `operator.namespaces=[a, b]`) with
exactly the chart's Roles, through a ServiceAccount token against the real RBAC
authorizer: the operator reconciles MessagingClusters in both namespaces, is never
Forbidden, and holds no cluster-wide grant."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from surge_cluster.testing import KubeCluster
from tests.e2e.operator_support import ROOT, OperatorProcess, eventually, install_crd
from tests.e2e.test_operator_rbac import _token_kubeconfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_operator_works_in_two_namespaces_with_only_roles(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path
) -> None:
    install_crd(node_cluster)
    core = client.CoreV1Api(node_cluster.api_client)
    suffix = uuid.uuid4().hex[:6]
    watched = [f"team-a-{suffix}", f"team-b-{suffix}"]
    for ns in watched:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    release = f"mn-{suffix}"
    rendered = node_cluster.helm(
        "template", release, str(ROOT / "charts" / "surge"), "--namespace", node_namespace,
        "--kube-version", "1.36.0", "--set", "operator.clusterWide=false",
        "--set", f"operator.namespaces={{{','.join(watched)}}}",
        "--set", "rbac.aggregateToDefaultRoles=false", "--set", "crds.install=false",
    ).stdout  # fmt: skip
    kinds = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    docs = [
        d
        for d in yaml.safe_load_all(rendered)
        if d
        and d["kind"] in kinds
        and "helm.sh/hook" not in (d["metadata"].get("annotations") or {})
    ]
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "no cluster-wide grant"
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"} >= set(watched)
    try:
        node_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
        kubeconfig = _token_kubeconfig(node_cluster, node_namespace, sa, tmp_path / "sa.yaml")
        op = OperatorProcess(
            node_cluster, node_namespace, tmp_path,
            KUBECONFIG=str(kubeconfig), SURGE_NAMESPACES=",".join(watched),
        ).start()  # fmt: skip
        try:
            custom = client.CustomObjectsApi(node_cluster.api_client)
            for ns in watched:
                custom.create_namespaced_custom_object(
                    "surge.dev", "v1alpha1", ns, "messagingclusters",
                    {
                        "apiVersion": "surge.dev/v1alpha1",
                        "kind": "MessagingCluster",
                        "metadata": {"name": "support"},
                        "spec": {
                            "regions": [{"name": "east", "role": "primary",
                                         "nats": {"url": "nats://nowhere.invalid:4222"}}],
                            "gateway": {"enabled": False},
                        },
                    },
                )  # fmt: skip
            apps = client.AppsV1Api(node_cluster.api_client)

            def reconciled(ns: str) -> bool:
                obj = custom.get_namespaced_custom_object(
                    "surge.dev", "v1alpha1", ns, "messagingclusters", "support"
                )
                names = [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
                return bool((obj.get("status") or {}).get("observedGeneration") == 1) and (
                    "support-worker" in names
                )

            for ns in watched:
                eventually(f"reconciled in {ns}", lambda ns=ns: reconciled(ns), timeout=90)
            denials = [
                line
                for line in op.log().splitlines()
                if "system:serviceaccount" in line and "forbidden" in line.lower()
            ]
            assert denials == [], denials[:3]
        finally:
            op.stop()
    finally:
        for ns in watched:
            core.delete_namespace(ns)
