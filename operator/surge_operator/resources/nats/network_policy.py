"""NetworkPolicy of one managed region's nats-servers (ingress only): who may reach which
port. The servers authenticate every connection themselves; this keeps everything else
from even trying.

    client   4222  this cluster's own pods (workers, gateways, backup Jobs, the servers),
                   pods labelled `surge.dev/nats-client: <cluster>` in the namespace (users'
                   own clients, opting in) and the operator, from any namespace
    routes   6222  this region's servers only
    leaf     7422  the other managed regions' servers (their mirrors' leafnode)
    monitor  8222  and the exporter's 7777: Prometheus (pods labelled
                   `app.kubernetes.io/name: prometheus`, as the Prometheus Operator and the
                   prometheus-community chart label them), from any namespace

Kubelet probes come from the node and are not subject to the policy. Egress stays open:
servers dial routes, the hub's leafnode port and DNS. The data-plane policy
(resources/network_policy.py) does not select the servers, so the two never overlap.
"""

from __future__ import annotations

from typing import Any

from surge_operator.api import Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import APP_NAME, label_value, metadata, selector_labels
from surge_operator.resources.nats.config import managed_regions
from surge_operator.resources.nats.names import (
    CLIENT_PORT,
    CLUSTER_PORT,
    LEAFNODE_PORT,
    METRICS_PORT,
    MONITOR_PORT,
    REGION_LABEL,
    nats_name,
)
from surge_operator.resources.nats.services import nats_selector

#: label a user's own client pod carries (value: the MessagingCluster) to reach :4222
CLIENT_LABEL = "surge.dev/nats-client"
#: the operator's pods, as the chart labels them (any namespace)
OPERATOR_PEER: dict[str, Any] = {
    "namespaceSelector": {},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": APP_NAME,
            "app.kubernetes.io/component": "operator",
        }
    },
}
PROMETHEUS_PEER: dict[str, Any] = {
    "namespaceSelector": {},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def nats_policy_name(ctx: BuildContext, region: Region) -> str:
    return nats_name(ctx.name, region.name)


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _pods(labels: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels}}


def build_nats_network_policy(ctx: BuildContext, region: Region) -> dict[str, Any]:
    own_pods = {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": label_value(ctx.name),
    }
    ingress: list[dict[str, Any]] = [
        {
            "from": [_pods(own_pods), _pods({CLIENT_LABEL: label_value(ctx.name)}), OPERATOR_PEER],
            "ports": _tcp(CLIENT_PORT),
        },
        {"from": [_pods(nats_selector(ctx, region))], "ports": _tcp(CLUSTER_PORT)},
    ]
    others = sorted(r.name for r in managed_regions(ctx) if r.name != region.name)
    if others:
        servers = selector_labels(ctx, "nats")
        ingress.append(
            {
                "from": [
                    {
                        "podSelector": {
                            "matchLabels": servers,
                            "matchExpressions": [
                                {"key": REGION_LABEL, "operator": "In", "values": others}
                            ],
                        }
                    }
                ],
                "ports": _tcp(LEAFNODE_PORT),
            }
        )
    ingress.append({"from": [PROMETHEUS_PEER], "ports": _tcp(MONITOR_PORT, METRICS_PORT)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, nats_policy_name(ctx, region), "nats"),
        "spec": {
            "podSelector": {"matchLabels": nats_selector(ctx, region)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
