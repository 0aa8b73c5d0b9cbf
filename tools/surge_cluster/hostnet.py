"""Create and remove one cluster's network: bridge, node namespaces, veths, routes, guards.

Host side: a bridge with the gateway address and an nftables table (named after the
cluster) that drops anything the nodes or pods send anywhere but the bridge and accepts
from them only the API server port and replies. Node side (inside each namespace): eth0
with the node address, routes to the other nodes' pod CIDRs, the Service CIDR on eth0 (so a
process on the node reaches ClusterIPs: the kernel needs a route before kube-proxy's OUTPUT
rules translate the address), forwarding on, and a masquerade for pod traffic to the node
subnet (API server) so replies find their way back. No default route exists in a node
namespace: pods cannot reach anything outside the cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from surge_cluster.netplan import CLUSTER_CIDR, SERVICE_CIDR, NetPlan, NodeNet, free_slot

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOCK_FILE = Path("/run/lock/surge-cluster-net.lock")


class NetworkError(RuntimeError):
    """A network set-up command failed (the message carries the command and its output)."""


def run(*argv: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        env={"PATH": SBIN_PATH, "LANG": "C"},
        timeout=30,
    )
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def in_netns(netns: str, *argv: str, check: bool = True) -> str:
    return run("ip", "netns", "exec", netns, *argv, check=check)


@contextlib.contextmanager
def allocation_lock() -> Iterator[None]:
    """Serialise subnet allocation between clusters started at the same time."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def addresses_in_use() -> list[str]:
    """Every IPv4 address (CIDR form) configured on this machine's interfaces."""
    out = json.loads(run("ip", "-j", "-4", "addr", "show") or "[]")
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in out
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    ]


def pick_subnet() -> str:
    return free_slot(addresses_in_use())


def link_exists(name: str) -> bool:
    return bool(run("ip", "-br", "link", "show", "dev", name, check=False).strip())


def netns_list() -> list[str]:
    out = run("ip", "-j", "netns", "list", check=False).strip()
    return [n["name"] for n in json.loads(out)] if out else []


def any_cluster_netns() -> bool:
    """True while any local cluster's node namespace exists on this machine."""
    return any(re.fullmatch(r"surge-[0-9a-f]{6}-\d+", n) for n in netns_list())


# ----------------------------------------------------------------- create
def create(plan: NetPlan, api_port: int) -> None:
    """Build everything; the caller holds allocation_lock() until the bridge exists."""
    _create_bridge(plan)
    for node in plan.nodes:
        _create_node(plan, node)
    for node in plan.nodes:
        for other in plan.nodes:
            if other is not node:
                in_netns(node.netns, "ip", "route", "replace", other.pod_cidr, "via", other.ip)
    _guard(plan, api_port)


def _create_bridge(plan: NetPlan) -> None:
    if not link_exists(plan.bridge):
        run("ip", "link", "add", plan.bridge, "type", "bridge")
    run("ip", "addr", "replace", f"{plan.gateway}/{plan.prefixlen}", "dev", plan.bridge)
    run("ip", "link", "set", plan.bridge, "up")


def _create_node(plan: NetPlan, node: NodeNet) -> None:
    if node.netns not in netns_list():
        run("ip", "netns", "add", node.netns)
    if not link_exists(node.host_veth):
        run(
            "ip", "link", "add", node.host_veth, "type", "veth",
            "peer", "name", "eth0", "netns", node.netns,
        )  # fmt: skip
    run("ip", "link", "set", node.host_veth, "master", plan.bridge, "up")
    ns = node.netns
    in_netns(ns, "ip", "link", "set", "lo", "up")
    in_netns(ns, "ip", "addr", "replace", f"{node.ip}/{plan.prefixlen}", "dev", "eth0")
    in_netns(ns, "ip", "link", "set", "eth0", "up")
    # Untranslated Service traffic leaves by eth0 and the host's guard drops it.
    in_netns(ns, "ip", "route", "replace", SERVICE_CIDR, "dev", "eth0", "src", node.ip)
    in_netns(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    # Pods on one node talk over the node's CNI bridge: let iptables (NetworkPolicy) see it.
    in_netns(ns, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
    rule = ("-s", CLUSTER_CIDR, "!", "-d", CLUSTER_CIDR, "-o", "eth0", "-j", "MASQUERADE")
    comment = ("-m", "comment", "--comment", "surge: pods to the node subnet")
    if not _rule_present(ns, rule, comment):
        in_netns(ns, "iptables", "-t", "nat", "-A", "POSTROUTING", *rule, *comment)


def _rule_present(ns: str, rule: tuple[str, ...], comment: tuple[str, ...]) -> bool:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-C", "POSTROUTING", *rule, *comment],
        capture_output=True,
        env={"PATH": SBIN_PATH},
        timeout=30,
    )
    return proc.returncode == 0


def guard_ruleset(plan: NetPlan, api_port: int) -> str:
    """The host-side nftables table (pure): nodes and pods reach the API server and nothing
    else on this machine, and nothing from the bridge is ever forwarded elsewhere."""
    br = plan.bridge
    return f"""table inet {plan.nft_table} {{
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{br}" ct state established,related accept
    iifname "{br}" ip daddr {plan.gateway} tcp dport {api_port} accept
    iifname "{br}" counter drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{br}" oifname != "{br}" counter drop
    oifname "{br}" iifname != "{br}" counter drop
  }}
}}
"""


def _guard(plan: NetPlan, api_port: int) -> None:
    run("nft", "delete", "table", "inet", plan.nft_table, check=False)
    run("nft", "-f", "-", input=guard_ruleset(plan, api_port))


# ----------------------------------------------------------------- remove
def remove(plan: NetPlan) -> list[str]:
    """Delete namespaces (their veths, routes and rules go with them), the bridge and the
    guard table. Returns what could not be removed."""
    problems: list[str] = []
    for node in plan.nodes:
        if node.netns in netns_list():
            out = run("ip", "netns", "pids", node.netns, check=False).split()
            if out:
                problems.append(f"netns {node.netns} still has processes {' '.join(out)}")
            try:
                run("ip", "netns", "del", node.netns)
            except NetworkError as err:
                problems.append(str(err))
        if link_exists(node.host_veth):
            run("ip", "link", "del", node.host_veth, check=False)
    if link_exists(plan.bridge):
        run("ip", "link", "del", plan.bridge, check=False)
    run("nft", "delete", "table", "inet", plan.nft_table, check=False)
    return problems


def leftovers(plan: NetPlan) -> list[str]:
    """Kernel network objects of this cluster that still exist."""
    found = [f"netns {n}" for n in netns_list() if n.startswith(f"surge-{plan.cluster_id}-")]
    links = json.loads(run("ip", "-j", "link", "show", check=False) or "[]")
    found += [
        f"link {link['ifname']}"
        for link in links
        if str(link.get("ifname", "")).startswith(f"sgc{plan.cluster_id}")
    ]
    tables = run("nft", "list", "tables", check=False)
    if f"inet {plan.nft_table}" in tables:
        found.append(f"nft table inet {plan.nft_table}")
    return found
