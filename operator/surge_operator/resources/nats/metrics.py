"""Metrics of a managed region: an exporter beside each nats-server.

The exporter is `surge-nats-exporter` from the Surge image (see
surge_operator.natsexporter), an equivalent of the NATS project's prometheus-nats-exporter:
it reads the same monitoring endpoints (/varz, /jsz, /healthz) of its own server on
loopback at scrape time and serves them on :7777/metrics under the exporter's metric
names (gnatsd_varz_*, jetstream_*). Why not the Go exporter: its module is not among the
Go modules this project can build from, and one image for every Surge process keeps
"no registry" deployments to one image load. Prometheus finds it through the pod's
`prometheus.io/*` annotations and the chart's PodMonitor (port `metrics`).
"""

from __future__ import annotations

from typing import Any

from surge_operator.api import ManagedNats
from surge_operator.resources.nats.names import METRICS_PORT, MONITOR_PORT
from surge_operator.resources.pods import container_security_context


def scrape_annotations(managed: ManagedNats) -> dict[str, str]:
    if not managed.metrics:
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def exporter_container(image: str) -> dict[str, Any]:
    return {
        "name": "exporter",
        "image": image,
        "command": [
            "surge-nats-exporter",
            f"--monitor-url=http://127.0.0.1:{MONITOR_PORT}",
            f"--port={METRICS_PORT}",
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "96Mi"}},
        "securityContext": container_security_context(),
    }
