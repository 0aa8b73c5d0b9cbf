"""The two Services of a managed region.

The headless Service gives every server a stable DNS name for cluster routes; it
publishes not-ready addresses so servers find each other while they are still forming a
quorum (a server is not ready until it has one). The client Service is what workers,
gateways, users' clients and other regions' leafnodes dial.
"""

from __future__ import annotations

from typing import Any

from surge_operator.api import Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata, selector_labels
from surge_operator.resources.nats.names import (
    CLIENT_PORT,
    CLUSTER_PORT,
    LEAFNODE_PORT,
    METRICS_PORT,
    MONITOR_PORT,
    headless_name,
    nats_name,
    nats_selector_labels,
)


def nats_selector(ctx: BuildContext, region: Region) -> dict[str, str]:
    return nats_selector_labels(selector_labels(ctx, "nats"), region.name)


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}


def build_headless_service(ctx: BuildContext, region: Region) -> dict[str, Any]:
    meta = metadata(ctx, headless_name(ctx.name, region.name), "nats")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": nats_selector(ctx, region),
            "ports": [
                _port("client", CLIENT_PORT),
                _port("cluster", CLUSTER_PORT),
                _port("monitor", MONITOR_PORT),
            ],
        },
    }


def build_client_service(ctx: BuildContext, region: Region) -> dict[str, Any]:
    ports = [_port("client", CLIENT_PORT), _port("leafnodes", LEAFNODE_PORT)]
    managed = region.nats.managed
    if managed is not None and managed.metrics:
        ports.append(_port("metrics", METRICS_PORT))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, nats_name(ctx.name, region.name), "nats"),
        "spec": {"type": "ClusterIP", "selector": nats_selector(ctx, region), "ports": ports},
    }
