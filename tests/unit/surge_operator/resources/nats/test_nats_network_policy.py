"""The managed servers' NetworkPolicy: each port open to exactly its peers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nats_support import PASSWORDS, managed_ctx

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext, obsolete_objects
from surge_operator.resources.nats.network_policy import build_nats_network_policy
from surge_operator.resources.nats.objects import desired_nats_objects

EAST_SERVERS = {
    "app.kubernetes.io/name": "surge",
    "app.kubernetes.io/instance": "support",
    "app.kubernetes.io/component": "nats",
    "surge.dev/nats-region": "east",
}


def peers_by_port(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["protocol"] == "TCP"
            out.setdefault(port["port"], []).extend(rule["from"])
    return out


def test_servers_take_ingress_only_and_only_on_their_ports() -> None:
    ctx = managed_ctx()
    policy = build_nats_network_policy(ctx, ctx.spec.regions[0])
    assert policy["metadata"]["name"] == "support-nats-east"
    assert policy["spec"]["podSelector"] == {"matchLabels": EAST_SERVERS}
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # routes, leafnodes, DNS dial out
    assert sorted(peers_by_port(policy)) == [4222, 6222, 7422, 7777, 8222]


def test_clients_are_this_clusters_pods_labelled_clients_and_the_operator() -> None:
    ctx = managed_ctx()
    clients = peers_by_port(build_nats_network_policy(ctx, ctx.spec.regions[0]))[4222]
    assert clients == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "surge",
                    "app.kubernetes.io/instance": "support",
                }
            }
        },
        {"podSelector": {"matchLabels": {"surge.dev/nats-client": "support"}}},
        {
            "namespaceSelector": {},
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "surge",
                    "app.kubernetes.io/component": "operator",
                }
            },
        },
    ]


def test_routes_only_among_the_regions_own_servers() -> None:
    ctx = managed_ctx()
    routes = peers_by_port(build_nats_network_policy(ctx, ctx.spec.regions[0]))[6222]
    assert routes == [{"podSelector": {"matchLabels": EAST_SERVERS}}]


def test_leafnodes_from_the_other_regions_servers_and_none_for_a_single_region() -> None:
    ctx = managed_ctx()
    [leaf] = peers_by_port(build_nats_network_policy(ctx, ctx.spec.regions[0]))[7422]
    selector = leaf["podSelector"]
    assert selector["matchLabels"]["app.kubernetes.io/component"] == "nats"
    assert selector["matchExpressions"] == [
        {"key": "surge.dev/nats-region", "operator": "In", "values": ["west"]}
    ]
    alone = replace(
        ctx,
        spec=parse_spec(
            {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {}}}]}
        ),
    )
    assert 7422 not in peers_by_port(build_nats_network_policy(alone, alone.spec.regions[0]))


def test_monitoring_and_metrics_from_prometheus_only() -> None:
    ctx = managed_ctx()
    ports = peers_by_port(build_nats_network_policy(ctx, ctx.spec.regions[1]))
    prometheus = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert ports[8222] == ports[7777] == [prometheus]


def test_switching_policies_off_drops_the_servers_policies_too() -> None:
    ctx: BuildContext = replace(managed_ctx(), network_policy=False)
    assert all(o["kind"] != "NetworkPolicy" for o in desired_nats_objects(ctx, PASSWORDS))
    gone = [r.name for r in obsolete_objects(ctx) if r.kind == "NetworkPolicy"]
    assert gone == ["support-surge", "support-nats-east", "support-nats-west"]
