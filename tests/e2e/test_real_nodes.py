"""Real nodes: two kubelets on containerd (regions east and west) run pods from a locally
built image; CoreDNS resolves Service names; kube-proxy routes ClusterIPs; kube-router
enforces NetworkPolicy; non-root, read-only-root pods run and probes drive readiness.

Runs unchanged against kind (SURGE_E2E_KUBECONFIG) once the busybox image is loaded there.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes import client

from surge_cluster.images import BUSYBOX_IMAGE, FileEntry, ImageSpec, docker_archive
from surge_cluster.testing import KubeCluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
NON_ROOT = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def pod(
    name: str,
    command: list[str],
    *,
    region: str | None = None,
    labels: dict[str, str] | None = None,
    readiness: dict[str, Any] | None = None,
    volumes: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "c",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": command,
        "securityContext": NON_ROOT,
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1, "containers": [container]}
    if readiness:
        container["readinessProbe"] = readiness
    if volumes:
        container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
        spec["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    if region:
        spec["nodeSelector"] = {REGION: region}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": spec,
    }


# busybox httpd's -v makes its request handler crash inside a container: keep it quiet.
SERVE = ["httpd", "-f", "-p", "8080", "-h", "/www"]
IDLE = ["sh", "-c", "echo up on $(hostname); exec sleep 3600"]
# Debian's busybox wget segfaults with -T: bound it with `timeout` instead.


def is_ready(p: Any) -> bool:
    return p.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or []
    )


def run_pods(core: Any, ns: str, *pods: dict[str, Any], timeout: float = 120) -> list[Any]:
    for manifest in pods:
        core.create_namespaced_pod(ns, manifest)
    names = [m["metadata"]["name"] for m in pods]

    def all_ready() -> list[Any] | None:
        got = [core.read_namespaced_pod(n, ns) for n in names]
        return got if all(is_ready(p) for p in got) else None

    result: list[Any] = eventually(f"pods {names} Ready", all_ready, timeout=timeout)
    return result


def sh(cluster: KubeCluster, ns: str, pod_name: str, script: str) -> tuple[int, str]:
    done = cluster.kubectl(
        "exec", "-n", ns, pod_name, "--", "sh", "-c", f"{script} 2>&1", check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def core(node_cluster: KubeCluster) -> Any:
    return client.CoreV1Api(node_cluster.api_client)


def test_two_real_nodes_labelled_east_and_west_like_kind(
    node_cluster: KubeCluster, core: Any
) -> None:
    nodes = core.list_node().items
    regions = {n.metadata.labels.get(REGION): n.metadata.labels.get(ZONE) for n in nodes}
    server = client.VersionApi(node_cluster.api_client).get_code().git_version

    assert regions == {"east": "east-a", "west": "west-a"}
    for node in nodes:
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        assert node.status.node_info.kubelet_version == server


def test_a_pod_from_the_local_image_runs_on_each_node(
    node_cluster: KubeCluster, core: Any, node_namespace: str
) -> None:
    ns = node_namespace
    east, west = run_pods(
        core, ns, pod("east", SERVE, region="east"), pod("west", SERVE, region="west")
    )

    for p, region in ((east, "east"), (west, "west")):
        node = core.read_node(p.spec.node_name)
        assert node.metadata.labels[REGION] == region
        assert p.status.container_statuses[0].container_id.startswith("containerd://")
        internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert p.status.host_ip in internal
    # Pod to pod across nodes; exec and logs go API server -> kubelet (client certificate).
    code, out = sh(
        node_cluster, ns, "east", f"timeout 5 wget -qO- http://{west.status.pod_ip}:8080/"
    )
    assert (code, out.strip()) == (0, "surge e2e")
    run_pods(core, ns, pod("talker", IDLE, region="west"))
    logs = node_cluster.kubectl("logs", "-n", ns, "talker").stdout
    assert logs.strip() == "up on talker"


def test_dns_resolves_a_service_name_and_kube_proxy_routes_its_cluster_ip(
    node_cluster: KubeCluster, core: Any, node_namespace: str
) -> None:
    ns = node_namespace
    run_pods(core, ns, pod("web", SERVE, region="east"), pod("client", IDLE, region="west"))
    service = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    cluster_ip = service.spec.cluster_ip
    fqdn = f"web.{ns}.svc.cluster.local"

    code, out = eventually(
        "the Service name to resolve",
        lambda: (r := sh(node_cluster, ns, "client", f"nslookup {fqdn}"))[0] == 0 and r,
        timeout=60,
    )
    assert cluster_ip in out
    code, out = eventually(
        "the ClusterIP to answer",
        lambda: (
            (r := sh(node_cluster, ns, "client", f"timeout 3 wget -qO- http://{cluster_ip}/"))[0]
            == 0
            and r
        ),
        timeout=60,
    )
    assert out.strip() == "surge e2e"
    code, out = sh(node_cluster, ns, "client", "timeout 3 wget -qO- http://web/")
    assert (code, out.strip()) == (0, "surge e2e"), out
    # Cluster DNS answers cluster.local only: nothing is forwarded upstream.
    code, out = sh(node_cluster, ns, "client", "nslookup -timeout=2 example.com")
    assert code != 0, out
    assert "REFUSED" in out
    # Pods reach the API server through the kubernetes Service (kube-proxy + endpoint).
    code, out = sh(node_cluster, ns, "client", "nc -w 3 kubernetes.default.svc 443 </dev/null")
    assert code == 0, out


def test_network_policy_refuses_a_pod_it_does_not_allow(
    node_cluster: KubeCluster, core: Any, node_namespace: str
) -> None:
    ns = node_namespace
    server, _, _ = run_pods(
        core,
        ns,
        pod("guarded", SERVE, region="east"),
        pod("friend", IDLE, region="west", labels={"access": "granted"}),
        pod("stranger", IDLE, region="west"),
    )
    fetch = f"timeout 2 wget -qO- http://{server.status.pod_ip}:8080/"
    # Probe refusals with nc: it exits non-zero on a refused or timed-out connection.
    connect = f"nc -w 2 {server.status.pod_ip} 8080 </dev/null"
    # Before any policy both get through: a refusal later is the policy's doing.
    for who in ("friend", "stranger"):
        code, out = sh(node_cluster, ns, who, fetch)
        assert (code, out.strip()) == (0, "surge e2e"), (who, out)

    networking = client.NetworkingV1Api(node_cluster.api_client)
    networking.create_namespaced_network_policy(
        ns,
        {
            "metadata": {"name": "only-friends"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "guarded"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "granted"}}}]}],
            },
        },
    )

    eventually("the stranger to be refused", lambda: sh(node_cluster, ns, "stranger", connect)[0])
    code, out = sh(node_cluster, ns, "friend", fetch)
    assert (code, out.strip()) == (0, "surge e2e"), out
    for _ in range(3):
        assert sh(node_cluster, ns, "stranger", connect)[0] != 0


def test_non_root_read_only_pod_runs_and_its_probe_drives_readiness(
    node_cluster: KubeCluster, core: Any, node_namespace: str
) -> None:
    ns = node_namespace
    name = f"probed-{uuid.uuid4().hex[:4]}"
    readiness = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}
    core.create_namespaced_pod(ns, pod(name, IDLE, readiness=readiness, volumes=True))

    def read() -> Any:
        return core.read_namespaced_pod(name, ns)

    eventually("the container to run", lambda: read().status.phase == "Running")
    assert not is_ready(read())
    code, out = sh(node_cluster, ns, name, "id -u; touch /rootfs-write")
    assert code != 0, out
    assert out.splitlines()[0] == "65534", out
    assert "Read-only file system" in out

    sh(node_cluster, ns, name, "touch /tmp/ready")
    eventually("the probe to make it Ready", lambda: is_ready(read()), timeout=30)
    sh(node_cluster, ns, name, "rm /tmp/ready")
    eventually("the probe to take Ready away", lambda: not is_ready(read()), timeout=30)

    # The HTTP probe path: a non-root server on 8080 becomes Ready through httpGet.
    http_probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    (served,) = run_pods(core, ns, pod(f"{name}-http", SERVE, readiness=http_probe))
    assert json.loads(json.dumps(served.spec.containers[0].security_context.to_dict()))[
        "read_only_root_filesystem"
    ]


def _outside_address() -> str:
    """This machine's address on its default-route interface (what pods must never reach)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a source
        return str(probe.getsockname()[0])


def test_pods_reach_the_api_server_and_nothing_else_on_this_machine(
    node_cluster: KubeCluster, core: Any, node_namespace: str
) -> None:
    if node_cluster.cluster is None:
        pytest.skip("the host guard exists on the local cluster only")
    ns = node_namespace
    gateway = urlparse(node_cluster.api_client.configuration.host).hostname
    with socket.socket() as listener:  # a host service on every address, as many are
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection((_outside_address(), port), timeout=2):
            pass  # reachable from the host itself
        run_pods(core, ns, pod("prober", IDLE))

        for address in (_outside_address(), gateway):
            code, out = sh(node_cluster, ns, "prober", f"nc -w 2 {address} {port} </dev/null")
            assert code != 0, (address, out)
        code, out = sh(node_cluster, ns, "prober", "nc -w 2 kubernetes.default.svc 443 </dev/null")
        assert code == 0, out


def test_load_images_makes_an_archive_runnable_on_every_node(
    node_cluster: KubeCluster, core: Any, node_namespace: str, tmp_path: Path
) -> None:
    if node_cluster.cluster is None:
        pytest.skip("kind loads images with `kind load image-archive`")
    tag = f"surge.local/loaded:{uuid.uuid4().hex[:8]}"
    busybox = Path("/bin/busybox").read_bytes()
    spec = ImageSpec(
        tag,
        [
            FileEntry("/bin/busybox", busybox, 0o755),
            FileEntry("/bin/sh", link="busybox"),
            FileEntry("/bin/cat", link="busybox"),
            FileEntry("/bin/sleep", link="busybox"),
            FileEntry("/marker", tag.encode()),
        ],
    )
    archive = tmp_path / "loaded.tar"
    archive.write_bytes(docker_archive(spec))

    node_cluster.load_images([archive])

    manifests = []
    for region in ("east", "west"):
        manifest = pod(f"loaded-{region}", ["sleep", "3600"], region=region)
        manifest["spec"]["containers"][0]["image"] = tag
        manifests.append(manifest)
    run_pods(core, node_namespace, *manifests)
    for region in ("east", "west"):
        code, out = sh(node_cluster, node_namespace, f"loaded-{region}", "cat /marker")
        assert (code, out) == (0, tag)
