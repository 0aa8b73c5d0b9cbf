"""Names and addresses of one local cluster's network (pure: cluster dir + slot in, plan out).

Every real node is its own network namespace, joined by a veth pair to a bridge that belongs
to this cluster alone. The bridge carries a documentation-range /28 (RFC 5737): its first
address is the API server's, the next ones are the nodes'. Pod and Service CIDRs are only
routed inside the node namespaces. Every name carries an id derived from the cluster
directory, so two clusters (a test run and a CI run) never share a bridge, netns or cgroup.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"

# 192.0.2.0/24 is taken by the outside interface of these machines; use the other two.
NODE_RANGES = ("198.51.100.0/24", "203.0.113.0/24")
SLOT_PREFIX = 28
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class NodeSpec:
    """A real node: a name and its place (labels as in kind-config.yaml)."""

    name: str
    region: str
    zone: str


DEFAULT_REAL_NODES = (
    NodeSpec("surge-east-a", "east", "east-a"),
    NodeSpec("surge-west-a", "west", "west-a"),
)


@dataclass(frozen=True)
class NodeNet:
    index: int
    spec: NodeSpec
    netns: str
    host_veth: str
    ip: str
    pod_cidr: str
    cgroup_root: str
    cni_network: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class NetPlan:
    cluster_id: str
    subnet: str
    bridge: str
    gateway: str
    """The bridge's address: where the API server listens for nodes and pods."""
    nft_table: str
    nodes: tuple[NodeNet, ...]

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def node(self, name: str) -> NodeNet:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def cluster_id(root: Path) -> str:
    """Six hex digits naming this cluster's kernel objects (stable for one directory)."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:6]


def slots() -> list[ipaddress.IPv4Network]:
    """Every /28 a cluster may use, in allocation order."""
    out: list[ipaddress.IPv4Network] = []
    for block in NODE_RANGES:
        out += list(ipaddress.IPv4Network(block).subnets(new_prefix=SLOT_PREFIX))
    return out


def free_slot(in_use: Iterable[str]) -> str:
    """The first /28 that no address on this machine falls into (in_use: CIDR strings)."""
    used = [ipaddress.ip_interface(a) for a in in_use]
    for net in slots():
        if not any(u.ip in net or net.overlaps(u.network) for u in used if u.version == 4):
            return str(net)
    raise RuntimeError(f"no free /{SLOT_PREFIX} left in {', '.join(NODE_RANGES)}")


def plan(root: Path, subnet: str, nodes: Sequence[NodeSpec] = DEFAULT_REAL_NODES) -> NetPlan:
    ident = cluster_id(root)
    net = ipaddress.IPv4Network(subnet)
    hosts = list(net.hosts())
    if len(nodes) > len(hosts) - 1:
        raise ValueError(f"{subnet} holds at most {len(hosts) - 1} nodes, not {len(nodes)}")
    if len(nodes) > 255:
        raise ValueError("at most 255 nodes (one /24 pod CIDR each)")
    cluster = ipaddress.IPv4Network(CLUSTER_CIDR)
    pod_cidrs = list(cluster.subnets(new_prefix=24))
    node_nets = tuple(
        NodeNet(
            index=i,
            spec=spec,
            netns=f"surge-{ident}-{i}",
            host_veth=f"sgc{ident}v{i}",
            ip=str(hosts[i + 1]),
            pod_cidr=str(pod_cidrs[i]),
            cgroup_root=f"/surge-{ident}-{spec.name}",
            cni_network=f"surge-{ident}-{spec.name}",
        )
        for i, spec in enumerate(nodes)
    )
    return NetPlan(
        cluster_id=ident,
        subnet=str(net),
        bridge=f"sgc{ident}",
        gateway=str(hosts[0]),
        nft_table=f"surge_{ident}",
        nodes=node_nets,
    )
