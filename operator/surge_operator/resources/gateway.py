"""The gateway Deployment (`surge-gateway`, HTTP ingest) and its ClusterIP Service."""

from __future__ import annotations

from typing import Any

from surge_operator.resources.config_map import GATEWAY_PORT
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import gateway_name, metadata, selector_labels
from surge_operator.resources.pods import http_probes, pod_template


def build_gateway_deployment(ctx: BuildContext) -> dict[str, Any]:
    container = {
        "name": "gateway",
        "image": ctx.data_plane_image,
        "command": ["surge-gateway"],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        **http_probes("http"),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ctx, gateway_name(ctx), "gateway"),
        "spec": {
            "replicas": ctx.spec.gateway.replicas,
            "selector": {"matchLabels": selector_labels(ctx, "gateway")},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "revisionHistoryLimit": 3,
            "template": pod_template(ctx, "gateway", container, with_tokens=True),
        },
    }


def build_gateway_service(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, gateway_name(ctx), "gateway"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ctx, "gateway"),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
