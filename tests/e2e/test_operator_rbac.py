"""Least privilege, checked against a real RBAC authorizer: the operator runs with only the
chart's ClusterRole (through a ServiceAccount token) and still converges, updates and
finalizes a MessagingCluster. A missing verb in the chart fails this test."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster_nats import ClusterNats
from tests.e2e.operator_support import (
    ROOT,
    Clusters,
    OperatorProcess,
    eventually,
    install_crd,
    manifest,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _chart_rbac(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    rendered = cluster.helm(
        "template", "surge", str(ROOT / "charts" / "surge"), "--namespace", namespace,
        "--kube-version", "1.36.0", "--set", f"fullnameOverride=surge-{namespace}",
        "--set", f"rbac.secretNamespaces={{{namespace}}}",
    ).stdout  # fmt: skip
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return [d for d in yaml.safe_load_all(rendered) if d and d.get("kind") in kinds]


def _token_kubeconfig(cluster: KubeCluster, namespace: str, sa: str, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == ctx["context"]["cluster"])
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": server["cluster"]}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return path


def _can_i(cluster: KubeCluster, who: str, verb: str, what: str, namespace: str) -> bool:
    args = ["auth", "can-i", verb, what, "--as", who]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    result = cluster.kubectl(*args, check=False)
    return result.stdout.strip() == "yes"


def _assert_can_i_matrix(cluster: KubeCluster, namespace: str, operator_sa: str) -> None:
    """What each ServiceAccount may do, asked of the real authorizer (impersonation).
    The workers and the gateway share the per-cluster identity `<cluster>-surge`."""
    operator = f"system:serviceaccount:{namespace}:{operator_sa}"
    pods = f"system:serviceaccount:{namespace}:least-surge"
    other = "kube-system"
    expected = [
        # operator: Secrets by name, only where granted; never listed, never cluster-wide
        (operator, "get", "secrets", namespace, True),
        (operator, "get", "secrets", other, False),
        (operator, "get", "secrets", "", False),
        (operator, "list", "secrets", namespace, False),
        (operator, "watch", "secrets", namespace, False),
        # pods: listed by label to observe managed NATS and deleted one at a time to roll it,
        # never watched
        (operator, "delete", "pods", namespace, True),
        (operator, "list", "pods", namespace, True),
        (operator, "watch", "pods", namespace, False),
        (operator, "patch", "messagingclusters.surge.dev", namespace, True),
        (operator, "delete", "messagingclusters.surge.dev", namespace, False),
        (operator, "update", "leases.coordination.k8s.io", namespace, True),
        (operator, "update", "leases.coordination.k8s.io", other, False),
        (operator, "create", "clusterroles.rbac.authorization.k8s.io", "", False),
        (operator, "get", "nodes", "", False),
        # workers and gateway: their ConfigMap and named Secrets, by name; nothing else
        (pods, "get", "configmaps/least-config", namespace, True),
        (pods, "get", "configmaps/kube-root-ca.crt", namespace, False),
        (pods, "list", "configmaps", namespace, False),
        (pods, "get", "secrets/tokens", namespace, True),
        (pods, "get", "secrets/other", namespace, False),
        (pods, "list", "secrets", namespace, False),
        (pods, "get", "pods", namespace, False),
        (pods, "create", "pods", namespace, False),
        (pods, "get", "messagingclusters.surge.dev", namespace, False),
        (pods, "update", "leases.coordination.k8s.io", namespace, False),
    ]
    actual = [(w, v, r, n, _can_i(cluster, w, v, r, n)) for w, v, r, n, _ in expected]
    wrong = [
        f"{w.rsplit(':', 1)[1]} {v} {r} in {n or 'all namespaces'}: got {got}, want {want}"
        for (w, v, r, n, got), (*_, want) in zip(actual, expected, strict=True)
        if got != want
    ]
    for who, verb, what, ns, got in actual:
        sa = who.rsplit(":", 1)[1]
        print(f"can-i {sa:>24} {verb:>6} {what:<40} {ns or '*':<16} {'yes' if got else 'no'}")
    assert wrong == [], wrong


def test_the_operator_works_with_exactly_the_charts_permissions(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path, cluster_nats: ClusterNats
) -> None:
    install_crd(node_cluster)
    docs = _chart_rbac(node_cluster, node_namespace)
    assert {d["kind"] for d in docs} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    node_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    role = next(d for d in docs if d["kind"] == "ClusterRole")["metadata"]["name"]
    try:
        kubeconfig = _token_kubeconfig(node_cluster, node_namespace, sa, tmp_path / "sa.yaml")
        # sanity: the token really is limited (it cannot read pods' logs, for one)
        denied = subprocess.run(
            [node_cluster.tool("kubectl"), "--kubeconfig", str(kubeconfig), "auth", "can-i",
             "delete", "messagingclusters"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert denied.stdout.strip() == "no"

        clusters = Clusters(node_cluster, node_namespace)
        clusters.core.create_namespaced_secret(
            node_namespace,
            {"metadata": {"name": "tokens"}, "stringData": {"tokens": '{"t": ["x"]}'}},
        )
        # Cluster-wide, as the chart installs it by default.
        op = OperatorProcess(
            node_cluster, node_namespace, tmp_path, KUBECONFIG=str(kubeconfig), SURGE_NAMESPACES=""
        ).start()
        try:
            clusters.create(
                manifest(
                    "least",
                    cluster_nats.url,
                    stream={"deletionPolicy": "delete"},
                    gateway={"replicas": 1, "tokensSecret": {"name": "tokens", "key": "tokens"}},
                )
            )
            eventually("Ready", lambda: clusters.is_true("least", "Ready"), timeout=180)
            _assert_can_i_matrix(node_cluster, node_namespace, sa)
            clusters.patch_spec("least", {"workers": {"concurrency": 3}})
            eventually(
                "generation 2 handled",
                lambda: (
                    (clusters.get("least") or {}).get("status", {}).get("observedGeneration") == 2
                ),
            )
            clusters.delete("least")
            eventually("finalized", lambda: clusters.get("least") is None, timeout=60)
            # RBAC denials read `... is forbidden: User "system:serviceaccount:..." cannot
            # <verb> resource ...`. (A cluster-wide operator may also meet namespaces that
            # other tests are tearing down: those "forbidden" messages are not RBAC.)
            denials = [
                line
                for line in op.log().splitlines()
                if "system:serviceaccount" in line and "cannot" in line
            ]
            assert denials == [], denials[:3]
        finally:
            op.stop()
    finally:
        node_cluster.kubectl("delete", "clusterrole", role, "--ignore-not-found", check=False)
        node_cluster.kubectl(
            "delete", "clusterrolebinding", role, "--ignore-not-found", check=False
        )
