"""The worker Deployment: `surge-worker` pods pulling from the cluster's stream.

`replicas` is included only when autoscaling is off: then the spec (and the scale
subresource, which writes spec.replicas) is the source of truth. With autoscaling on, the
field is owned by the autoscaler's own field manager, so re-applying this manifest never
resets the worker count the autoscaler chose.
"""

from __future__ import annotations

from typing import Any

from surge_operator.api import MessagingClusterSpec
from surge_operator.resources.config_map import METRICS_PORT
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata, selector_labels, worker_name
from surge_operator.resources.pods import http_probes, pod_template


def manual_replicas(spec: MessagingClusterSpec) -> int:
    """Worker count when autoscaling is off: spec.replicas, else the autoscaling minimum."""
    return spec.replicas if spec.replicas is not None else spec.autoscaling.min_replicas


def build_worker_deployment(ctx: BuildContext) -> dict[str, Any]:
    container = {
        "name": "worker",
        "image": ctx.data_plane_image,
        "command": ["surge-worker"],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        **http_probes("metrics"),
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(ctx, "worker")},
        # New workers must start before old ones stop: capacity never dips during a rollout.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "revisionHistoryLimit": 3,
        "template": pod_template(
            ctx,
            "worker",
            container,
            # Workers drain in-flight messages on SIGTERM; give them one ack wait.
            termination_grace_seconds=ctx.spec.stream.ack_wait_seconds + 5,
        ),
    }
    if not ctx.spec.autoscaling.enabled:
        spec = {"replicas": manual_replicas(ctx.spec), **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ctx, worker_name(ctx), "worker"),
        "spec": spec,
    }
