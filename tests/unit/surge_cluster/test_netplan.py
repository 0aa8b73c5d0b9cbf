from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from surge_cluster.hostnet import guard_ruleset
from surge_cluster.netplan import (
    CLUSTER_CIDR,
    DEFAULT_REAL_NODES,
    NodeSpec,
    cluster_id,
    free_slot,
    plan,
)


def test_two_directories_never_share_a_kernel_object_name(tmp_path: Path) -> None:
    a = plan(tmp_path / "a", "198.51.100.0/28")
    b = plan(tmp_path / "b", "198.51.100.16/28")

    names_a = {a.bridge, a.nft_table, *(n.netns for n in a.nodes), *(n.host_veth for n in a.nodes)}
    names_b = {b.bridge, b.nft_table, *(n.netns for n in b.nodes), *(n.host_veth for n in b.nodes)}
    assert not names_a & names_b
    assert {n.cgroup_root for n in a.nodes}.isdisjoint(n.cgroup_root for n in b.nodes)


def test_interface_names_fit_the_kernel_limit(tmp_path: Path) -> None:
    many = [NodeSpec(f"n{i}", "east", "east-a") for i in range(12)]
    p = plan(tmp_path, "203.0.113.240/28", many)

    assert all(len(n) <= 15 for n in [p.bridge, *(x.host_veth for x in p.nodes)])


def test_addresses_gateway_first_then_nodes_and_one_pod_cidr_each(tmp_path: Path) -> None:
    p = plan(tmp_path, "198.51.100.32/28")

    assert p.gateway == "198.51.100.33"
    assert [n.ip for n in p.nodes] == ["198.51.100.34", "198.51.100.35"]
    cidrs = [ipaddress.ip_network(n.pod_cidr) for n in p.nodes]
    assert all(c.subnet_of(ipaddress.ip_network(CLUSTER_CIDR)) for c in cidrs)
    assert not cidrs[0].overlaps(cidrs[1])


def test_default_nodes_match_kind_config_regions_and_zones() -> None:
    assert {(n.region, n.zone) for n in DEFAULT_REAL_NODES} == {
        ("east", "east-a"),
        ("west", "west-a"),
    }


def test_free_slot_skips_every_range_in_use_and_never_the_outside_network() -> None:
    in_use = ["192.0.2.2/24", "198.51.100.1/28", "127.0.0.1/8", "198.51.100.20/28"]

    assert free_slot(in_use) == "198.51.100.32/28"
    assert free_slot([]) == "198.51.100.0/28"


def test_free_slot_fails_clearly_when_all_are_taken() -> None:
    taken = ["198.51.100.0/24", "203.0.113.0/24"]

    with pytest.raises(RuntimeError, match="no free /28"):
        free_slot(taken)


def test_too_many_nodes_for_the_subnet_is_refused(tmp_path: Path) -> None:
    many = [NodeSpec(f"n{i}", "east", "east-a") for i in range(14)]

    with pytest.raises(ValueError, match="at most 13 nodes"):
        plan(tmp_path, "198.51.100.0/28", many)


def test_cluster_id_is_stable_per_directory(tmp_path: Path) -> None:
    assert cluster_id(tmp_path) == cluster_id(tmp_path / ".")
    assert cluster_id(tmp_path / "x") != cluster_id(tmp_path / "y")


def test_guard_drops_everything_but_the_api_server_and_keeps_pods_off_the_outside(
    tmp_path: Path,
) -> None:
    p = plan(tmp_path, "198.51.100.0/28")

    rules = guard_ruleset(p, 6443)

    assert f"table inet {p.nft_table}" in rules
    assert f'iifname "{p.bridge}" ip daddr {p.gateway} tcp dport 6443 accept' in rules
    assert f'iifname "{p.bridge}" counter drop' in rules
    assert f'iifname "{p.bridge}" oifname != "{p.bridge}" counter drop' in rules
