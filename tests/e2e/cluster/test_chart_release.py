"""The chart installed as SREs install it, on real nodes, checked the way a user would.

One release for the whole module, in this order: `helm install` (operator as a pod under
the chart's RBAC) -> `kubectl apply` of the examples -> the gateway through its Service
name -> NetworkPolicy refusals -> non-root read-only pods and readiness probes ->
`helm upgrade` to a second tag of the image -> `helm uninstall`. Nothing touches the host's
loopback: pods, cluster DNS, kube-proxy, `kubectl exec` and `logs` only, so the module runs
unchanged on the local real-node cluster and on kind (`make e2e KUBECONFIG=...`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import (
    IMAGE,
    NATS_URL,
    RELEASE,
    RELEASE_NS,
    RETAG,
    ROOT,
    archives,
    describe,
    exec_python,
    install_release,
    kube_json,
    node_images,
    pods,
    probe_ports,
    ready,
    rolled_out,
    run_client,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHART = str(ROOT / "charts" / "surge")
OPERATOR = "app.kubernetes.io/instance=surge,app.kubernetes.io/component=operator"
TOKEN = "e2e-token-0123456789"
MC = "support-gw"


@pytest.fixture(scope="module")
def release(node_cluster: KubeCluster) -> Iterator[KubeCluster]:
    if getattr(node_cluster, "cluster", None) is not None:
        # The local cluster: import the archives into every node's containerd here
        # (make e2e-load does it with `kind load` for kind).
        node_cluster.load_images(archives())
    wait_for(
        f"{IMAGE} on every node",
        lambda: all(IMAGE in names for names in node_images(node_cluster)),
        timeout=90,
    )
    started = time.monotonic()
    printed = install_release(node_cluster)
    print(f"\n{printed.strip()}\ninstall.sh wall {time.monotonic() - started:.1f} s")
    yield node_cluster
    # Leave the shared cluster as found: no cluster-wide operator for later modules.
    node_cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, check=False)


@pytest.fixture(scope="module")
def gateway_ns(release: KubeCluster) -> Iterator[str]:
    """A namespace with a MessagingCluster that runs workers and a gateway."""
    ns = f"e2e-gw-{uuid.uuid4().hex[:6]}"
    release.kubectl("create", "namespace", ns)
    # The chart grants Secret access only where an SRE says so (gateway tokens live here).
    release.helm(
        "upgrade", RELEASE, CHART, "--namespace", RELEASE_NS, "--reuse-values",
        "--set", f"rbac.secretNamespaces={{{ns}}}",
    )  # fmt: skip
    release.kubectl(
        "create", "secret", "generic", "tenant-tokens", "-n", ns,
        f"--from-literal=tokens={json.dumps({'acme': [TOKEN]})}",
    )  # fmt: skip
    body = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "MessagingCluster",
        "metadata": {"name": MC, "namespace": ns},
        "spec": {
            "regions": [{"name": "east", "role": "primary", "nats": {"url": NATS_URL}}],
            "stream": {"subjectPrefix": f"gw_{ns.replace('-', '_')}", "deletionPolicy": "delete"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            "gateway": {
                "replicas": 1,
                "tokensSecret": {"name": "tenant-tokens", "key": "tokens"},
            },
        },
    }
    release.kubectl("apply", "-f", "-", input=json.dumps(body))
    for deployment in (f"{MC}-worker", f"{MC}-gateway"):
        wait_for(
            f"{deployment} running {IMAGE}",
            lambda d=deployment: rolled_out(release, ns, d, IMAGE),  # type: ignore[misc]
            timeout=240,
            diagnose=lambda: describe(release, ns),
        )
    try:
        yield ns
    finally:
        # The operator may be gone (helm uninstall): lift the finalizers so the namespace goes.
        release.kubectl(
            "patch", "messagingcluster", MC, "-n", ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
        release.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_helm_install_runs_the_operator_as_a_pod_under_the_charts_rbac(
    release: KubeCluster,
) -> None:
    operators = pods(release, RELEASE_NS, OPERATOR)
    assert len(operators) == 2, [p["metadata"]["name"] for p in operators]
    for pod in operators:
        assert ready(pod), pod["metadata"]["name"]
        assert pod["spec"]["serviceAccountName"] == "surge"
        status = pod["status"]["containerStatuses"][0]
        assert status["image"].endswith(IMAGE), status
        assert status["imageID"], status
        assert pod["spec"]["nodeName"]
        assert pod["status"]["podIP"]
    sa = f"system:serviceaccount:{RELEASE_NS}:surge"

    def can(verb: str, resource: str) -> str:
        out = release.kubectl("auth", "can-i", verb, resource, f"--as={sa}", check=False)
        return out.stdout.strip()

    assert can("patch", "messagingclusters.surge.dev/status") == "yes"
    assert can("create", "deployments.apps") == "yes"
    assert can("delete", "messagingclusters.surge.dev") == "no"
    assert can("list", "secrets") == "no", "secrets are read by name only"


def test_kubectl_apply_of_the_example_runs_worker_pods_from_the_image(
    release: KubeCluster, node_namespace: str
) -> None:
    release.kubectl("apply", "-n", node_namespace, "-f", str(ROOT / "examples" / "minimal.yaml"))
    wait_for(
        "the example's workers",
        lambda: rolled_out(release, node_namespace, "support-worker", IMAGE),
        timeout=240,
        diagnose=lambda: describe(release, node_namespace),
    )

    def is_ready() -> bool:
        mc = kube_json(release, "get", "messagingcluster", "support", "-n", node_namespace)
        conditions = mc.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(
        "MessagingCluster support Ready",
        is_ready,
        timeout=120,
        diagnose=lambda: describe(release, node_namespace),
    )
    for pod in pods(release, node_namespace, "app.kubernetes.io/component=worker"):
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"], status
        assert status["imageID"], status
        assert pod["status"]["podIP"] != pod["status"]["hostIP"], "a pod network, not the host's"


def test_the_gateway_is_reached_through_its_service_name_via_cluster_dns(
    release: KubeCluster, gateway_ns: str
) -> None:
    service = kube_json(release, "get", "service", f"{MC}-gateway", "-n", gateway_ns)
    host = f"{MC}-gateway.{gateway_ns}.svc.cluster.local"
    script = f"""
import json, socket, time, urllib.error, urllib.request
host = {host!r}
print("RESOLVED", socket.gethostbyname(host), flush=True)
auth = {{"Authorization": "Bearer {TOKEN}", "Content-Type": "application/json"}}
body = json.dumps({{"id": "m-e2e-1", "conversation_id": "c-e2e", "text": "my order never arrived",
                   "priority": "critical"}}).encode()
request = urllib.request.Request(f"http://{{host}}/v1/messages", data=body, headers=auth)
with urllib.request.urlopen(request, timeout=10) as reply:
    print("POST", reply.status, reply.read().decode(), flush=True)
for _ in range(90):
    try:
        url = f"http://{{host}}/v1/conversations/c-e2e/transcript"
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=5) as r:
            print("TRANSCRIPT", r.read().decode(), flush=True)
            break
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise
        time.sleep(1)
else:
    raise SystemExit("no transcript after 90 s")
"""
    result = run_client(release, gateway_ns, script)
    assert result.phase == "Succeeded", result.log
    assert f"RESOLVED {service['spec']['clusterIP']}" in result.log, result.log
    assert "POST 202" in result.log, result.log
    transcript = json.loads(result.log.split("TRANSCRIPT ", 1)[1].splitlines()[0])
    assert [m["text"] for m in transcript["messages"]] == ["my order never arrived"]


def test_a_network_policy_refuses_a_pod_it_does_not_allow(
    release: KubeCluster, gateway_ns: str
) -> None:
    # Surge's own policy admits the gateway port from anywhere (tenants authenticate);
    # narrow it to pods labelled role=client and check the enforcer really drops the rest.
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-clients-only", "namespace": gateway_ns},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
        },
    }
    surge_policy = kube_json(release, "get", "networkpolicy", f"{MC}-surge", "-n", gateway_ns)
    assert surge_policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    release.kubectl("apply", "-f", "-", input=json.dumps(policy))
    # NetworkPolicies are additive: with two selecting the gateway, Surge's (any source on
    # the gateway port) still admits everyone. Remove that ingress rule for this check.
    release.kubectl(
        "patch", "networkpolicy", f"{MC}-surge", "-n", gateway_ns, "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/ingress", "value": []}]',
    )  # fmt: skip
    gateway = pods(release, gateway_ns, "app.kubernetes.io/component=gateway")[0]
    ip = gateway["status"]["podIP"]
    try:
        assert probe_ports(release, gateway_ns, ip, [8080]) == {8080: "closed"}
        allowed = probe_ports(release, gateway_ns, ip, [8080], labels={"role": "client"})
        assert allowed == {8080: "open"}
    finally:
        release.kubectl("delete", "networkpolicy", "gateway-clients-only", "-n", gateway_ns)
        # The operator restores its own policy on the next resync; do it now for the rest.
        release.kubectl(
            "patch", "networkpolicy", f"{MC}-surge", "-n", gateway_ns, "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/ingress",
                         "value": surge_policy["spec"]["ingress"]}]),
        )  # fmt: skip


def test_pods_run_non_root_on_a_read_only_root_and_probes_drive_readiness(
    release: KubeCluster, gateway_ns: str
) -> None:
    gateway = pods(release, gateway_ns, "app.kubernetes.io/component=gateway")[0]
    name = gateway["metadata"]["name"]
    probe = """
import os
print("UID", os.getuid(), os.getgid())
try:
    open("/opt/surge/written", "w")
except OSError as err:
    print("ROOTFS", err.errno)
open("/tmp/written", "w").write("ok")
print("TMP ok")
"""
    out = exec_python(release, gateway_ns, name, "gateway", probe)
    assert "UID 65532 65532" in out.stdout, (out.stdout, out.stderr)
    assert "ROOTFS 30" in out.stdout, "EROFS: the root filesystem is read-only"
    assert "TMP ok" in out.stdout

    def gateway_ready() -> bool:
        current = kube_json(release, "get", "pod", name, "-n", gateway_ns)
        return ready(current)

    # /readyz fails without NATS: the kubelet's probe takes the gateway out of its Service.
    release.kubectl("scale", "deployment/nats", "-n", RELEASE_NS, "--replicas=0")
    try:
        wait_for("the gateway NotReady without NATS", lambda: not gateway_ready(), timeout=90)
        endpoints = kube_json(
            release, "get", "endpointslices", "-n", gateway_ns,
            "-l", f"kubernetes.io/service-name={MC}-gateway",
        )  # fmt: skip
        ready_endpoints = [
            e
            for s in endpoints["items"]
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
        ]
        assert ready_endpoints == []
    finally:
        release.kubectl("scale", "deployment/nats", "-n", RELEASE_NS, "--replicas=1")
    wait_for("the gateway Ready again with NATS", gateway_ready, timeout=120)


def test_helm_upgrade_to_a_new_tag_rolls_the_operator_and_the_data_plane(
    release: KubeCluster, gateway_ns: str
) -> None:
    new = f"surge:{RETAG}"
    release.helm(
        "upgrade", RELEASE, CHART, "--namespace", RELEASE_NS, "--reuse-values",
        "--set", f"image.tag={RETAG}",
    )  # fmt: skip
    wait_for("the operator on the new tag", lambda: rolled_out(release, RELEASE_NS, "surge", new))
    for deployment in (f"{MC}-worker", f"{MC}-gateway"):
        wait_for(
            f"{deployment} on the new tag",
            lambda d=deployment: rolled_out(release, gateway_ns, d, new),  # type: ignore[misc]
            timeout=240,
        )


def _release_objects(cluster: KubeCluster) -> list[str]:
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"
    kinds = "deployments,services,serviceaccounts,poddisruptionbudgets,roles,rolebindings"
    kinds += ",configmaps"
    names = cluster.kubectl(
        "get", kinds, "-n", RELEASE_NS, "-l", selector, "-o", "name"
    ).stdout.split()
    names += cluster.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"
    ).stdout.split()
    return names


def test_helm_uninstall_removes_the_release_and_keeps_crds_and_clusters(
    release: KubeCluster, gateway_ns: str
) -> None:
    before = _release_objects(release)
    assert any(n.startswith("deployment") for n in before), before
    assert any(n.startswith("clusterrole") for n in before), before
    release.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait")
    wait_for("the release's objects gone", lambda: _release_objects(release) == [], timeout=60)
    wait_for("the operator pods gone", lambda: pods(release, RELEASE_NS, OPERATOR) == [])
    # Kept on purpose (README, "Uninstalling"): the CRD carries helm.sh/resource-policy: keep
    # (deleting it would delete every MessagingCluster with it), and the MessagingClusters
    # with their workloads keep running without the operator, frozen at their last size.
    crd: dict[str, Any] = kube_json(release, "get", "crd", "messagingclusters.surge.dev")
    assert crd["metadata"]["name"] == "messagingclusters.surge.dev"
    mc = kube_json(release, "get", "messagingcluster", MC, "-n", gateway_ns)
    assert mc["metadata"]["finalizers"], "its finalizer waits for an operator"
    assert release.kubectl("get", "deployment", f"{MC}-worker", "-n", gateway_ns).returncode == 0
    annotations = crd["metadata"].get("annotations") or {}
    assert annotations.get("helm.sh/resource-policy") == "keep", "crds.keep (the default)"
