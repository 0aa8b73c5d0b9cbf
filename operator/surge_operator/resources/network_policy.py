"""NetworkPolicy for the cluster's pods: default-deny with the few flows the pipeline needs.

Ingress: the gateway's HTTP port from anywhere (it authenticates tenants itself), the
metrics port of both components from anywhere (Prometheus). Egress: DNS, the NATS ports
named in the spec's region URLs, the S3 endpoint's port when backups go to S3, and the
`spec.networkPolicy.extraEgress` rules a custom handler needs for its outbound calls;
nothing else. Managed nats-servers are outside this policy: they have their own
(resources/nats/network_policy.py). `spec.networkPolicy.enabled: false` (or the chart's
`dataPlane.networkPolicy.enabled: false`) removes the policy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from surge_operator.resources.backup import target_port
from surge_operator.resources.config_map import GATEWAY_PORT, METRICS_PORT
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import label_value, metadata
from surge_operator.resources.nats.names import region_url

NATS_DEFAULT_PORT = 4222


def nats_ports(ctx: BuildContext) -> list[int]:
    ports: set[int] = set()
    for region in ctx.spec.regions:
        url_list = region_url(ctx.name, ctx.namespace, region)
        for url in url_list.split(","):
            try:
                port = urlsplit(url.strip()).port
            except ValueError:
                port = None
            ports.add(port or NATS_DEFAULT_PORT)
    return sorted(ports)


def backup_ports(ctx: BuildContext) -> list[int]:
    """The S3 endpoints' ports, for the backup and restore Jobs (PVC targets need none)."""
    targets = [t.target for t in (ctx.spec.backup, ctx.spec.restore_from) if t is not None]
    return sorted({p for p in (target_port(t) for t in targets) if p is not None})


# The cluster DNS pods, as kube-dns/CoreDNS deployments label them. A NetworkPolicy sees the
# pod's port after the Service's translation, and CoreDNS run as non-root listens on a high
# port (1053, 5353) behind the Service's 53: egress to those pods is allowed on any port.
CLUSTER_DNS_PEER: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def policy_name(ctx: BuildContext) -> str:
    return f"{ctx.name}-surge"


def build_network_policy(ctx: BuildContext) -> dict[str, Any]:
    def tcp(port: int) -> dict[str, Any]:
        return {"protocol": "TCP", "port": port}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, policy_name(ctx), "network"),
        "spec": {
            # The data plane of this cluster (workers, gateways, backup Jobs), not its managed
            # nats-servers: they serve clients, routes, leafnodes and monitoring on their own
            # ports, which these rules would refuse (seen on real nodes: the operator timed
            # out on :4222 and the MessagingCluster never became Ready).
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "surge",
                    "app.kubernetes.io/instance": label_value(ctx.name),
                },
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["nats"]}
                ],
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [tcp(GATEWAY_PORT), tcp(METRICS_PORT)]}],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, tcp(53)]},
                {"to": [CLUSTER_DNS_PEER]},
                {"ports": [tcp(p) for p in nats_ports(ctx)]},
                *([{"ports": [tcp(p) for p in backup_ports(ctx)]}] if backup_ports(ctx) else []),
                *(
                    rule.model_dump(by_alias=True, exclude_none=True)
                    for rule in ctx.spec.network_policy.extra_egress
                ),
            ],
        },
    }
