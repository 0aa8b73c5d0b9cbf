from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from surge_cluster import addons
from surge_cluster.netplan import DNS_SERVICE_IP, plan
from surge_cluster.nodeconfig import (
    NodePaths,
    cni_conflist,
    containerd_toml,
    kube_proxy_config,
    kubelet_config,
    node_manifest,
)


def _two(tmp_path: Path) -> list[tuple[object, NodePaths]]:
    p = plan(tmp_path, "198.51.100.0/28")
    return [(n, NodePaths(tmp_path / "nodes" / n.name)) for n in p.nodes]


def test_each_node_has_its_own_containerd_root_state_socket_and_runc_root(tmp_path: Path) -> None:
    (_, a), (_, b) = _two(tmp_path)
    ca, cb = tomllib.loads(containerd_toml(a)), tomllib.loads(containerd_toml(b))

    def keys(c: dict) -> set[str]:  # type: ignore[type-arg]
        cri = c["plugins"]["io.containerd.grpc.v1.cri"]
        runc = cri["containerd"]["runtimes"]["runc"]["options"]["Root"]
        return {c["root"], c["state"], c["grpc"]["address"], runc, cri["cni"]["conf_dir"]}

    assert len(keys(ca)) == 5
    assert keys(ca).isdisjoint(keys(cb))


def test_containerd_restricts_oom_score_adj_and_uses_the_local_pause_image(
    tmp_path: Path,
) -> None:
    (_, a), _ = _two(tmp_path)
    cri = tomllib.loads(containerd_toml(a))["plugins"]["io.containerd.grpc.v1.cri"]

    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"].startswith("surge.local/")
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_kubelet_runs_on_cgroup_v1_never_anonymous_and_keeps_imported_images(
    tmp_path: Path,
) -> None:
    (node, paths), _ = _two(tmp_path)
    cfg = yaml.safe_load(kubelet_config(node, paths, tmp_path / "ca.crt"))  # type: ignore[arg-type]

    assert cfg["failCgroupV1"] is False
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["cgroupRoot"] == node.cgroup_root  # type: ignore[attr-defined]
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authorization"]["mode"] == "Webhook"
    assert cfg["clusterDNS"] == [DNS_SERVICE_IP]
    assert cfg["imageGCHighThresholdPercent"] == 100
    assert str(paths.root) in cfg["podLogsDir"]


def test_cni_ipam_store_and_network_name_are_per_node(tmp_path: Path) -> None:
    (na, pa), (nb, pb) = _two(tmp_path)
    a = json.loads(cni_conflist(na, pa))  # type: ignore[arg-type]
    b = json.loads(cni_conflist(nb, pb))  # type: ignore[arg-type]

    assert a["name"] != b["name"]
    assert a["plugins"][0]["ipam"]["dataDir"] != b["plugins"][0]["ipam"]["dataDir"]
    assert a["plugins"][0]["ipMasq"] is False


def test_kube_proxy_leaves_machine_wide_conntrack_knobs_alone(tmp_path: Path) -> None:
    (node, paths), _ = _two(tmp_path)
    cfg = yaml.safe_load(kube_proxy_config(node, paths))  # type: ignore[arg-type]

    assert cfg["conntrack"]["maxPerCore"] == 0
    assert cfg["mode"] == "iptables"


def test_node_object_carries_region_zone_and_its_pod_cidr(tmp_path: Path) -> None:
    (node, _), _ = _two(tmp_path)
    manifest = node_manifest(node)  # type: ignore[arg-type]

    assert manifest["metadata"]["labels"]["topology.kubernetes.io/region"] == "east"
    assert manifest["metadata"]["labels"]["topology.kubernetes.io/zone"] == "east-a"
    assert manifest["spec"]["podCIDR"] == node.pod_cidr  # type: ignore[attr-defined]


def test_cluster_dns_answers_cluster_local_only_and_forwards_nothing() -> None:
    assert "forward" not in addons.COREFILE
    assert addons.COREFILE.startswith("cluster.local:")
    objs = addons.coredns("surge.local/coredns:v1")
    service = next(o for o in objs if o["kind"] == "Service")
    assert service["spec"]["clusterIP"] == DNS_SERVICE_IP
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    sc = deploy["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"]
    assert sc["readOnlyRootFilesystem"]
    assert [addons.collection_path(o) for o in objs][
        -1
    ] == "/api/v1/namespaces/kube-system/services"
