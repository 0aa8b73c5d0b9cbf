"""`surge-nats-exporter`: Prometheus metrics of one nats-server, read from its monitoring
port at scrape time (the sidecar of every managed server; see resources/nats/metrics.py).

Names follow the NATS project's prometheus-nats-exporter (`gnatsd_varz_*` for /varz,
`jetstream_*` for /jsz, `gnatsd_healthz_status`) so its dashboards and alerts apply.
Reading at scrape time, not on a timer, means a scrape never reports older figures than
the server has; a server that does not answer yields `gnatsd_up 0` and nothing else.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

VARZ_GAUGES = {
    "connections": "Client connections",
    "routes": "Route connections",
    "leafnodes": "Leafnode connections",
    "in_msgs": "Messages received (counter)",
    "out_msgs": "Messages sent (counter)",
    "in_bytes": "Bytes received (counter)",
    "out_bytes": "Bytes sent (counter)",
    "slow_consumers": "Slow consumers (counter)",
    "mem": "Resident memory in bytes",
    "cpu": "CPU percent",
    "subscriptions": "Subscriptions",
}


def _get(base: str, path: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}{path}", timeout=timeout) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def varz_metrics(varz: dict[str, Any], server: str) -> Iterator[Metric]:
    for key, help_text in VARZ_GAUGES.items():
        g = GaugeMetricFamily(f"gnatsd_varz_{key}", help_text, labels=["server_id"])
        g.add_metric([server], float(varz.get(key, 0) or 0))
        yield g


def jsz_metrics(jsz: dict[str, Any], server: str) -> Iterator[Metric]:
    meta = jsz.get("meta_cluster") or {}
    leader = GaugeMetricFamily(
        "jetstream_meta_leader", "1 on the JetStream meta leader", labels=["server_id"]
    )
    leader.add_metric([server], 1.0 if meta.get("leader") == server else 0.0)
    yield leader
    for key in ("streams", "consumers", "messages", "bytes"):
        g = GaugeMetricFamily(
            f"jetstream_server_total_{key}", f"JetStream {key}", labels=["server_id"]
        )
        g.add_metric([server], float(jsz.get(key, 0) or 0))
        yield g
    lag = GaugeMetricFamily(
        "jetstream_stream_replica_lag",
        "Operations a replica is behind its stream leader",
        labels=["server_id", "stream", "replica"],
    )
    current = GaugeMetricFamily(
        "jetstream_stream_replica_current",
        "1 when the replica is current",
        labels=["server_id", "stream", "replica"],
    )
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            for replica in (stream.get("cluster") or {}).get("replicas") or []:
                labels = [server, stream.get("name", ""), replica.get("name", "")]
                lag.add_metric(labels, float(replica.get("lag", 0) or 0))
                current.add_metric(labels, 1.0 if replica.get("current") else 0.0)
    yield lag
    yield current


class NatsCollector(Collector):
    def __init__(self, base: str, timeout: float = 2.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gnatsd_up", "1 when the monitoring port answered")
        try:
            varz = _get(self.base, "/varz", self.timeout)
            jsz = _get(self.base, "/jsz?accounts=true&streams=true", self.timeout)
        except (OSError, urllib.error.URLError, ValueError):
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        server = str(varz.get("server_name") or varz.get("server_id") or "")
        yield from varz_metrics(varz, server)
        yield from jsz_metrics(jsz, server)
        healthy = GaugeMetricFamily("gnatsd_healthz_status", "0 when /healthz says ok")
        try:
            status = _get(self.base, "/healthz", self.timeout).get("status")
        except (OSError, urllib.error.URLError, ValueError):
            status = "unavailable"
        healthy.add_metric([], 0.0 if status == "ok" else 1.0)
        yield healthy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="surge-nats-exporter", description=__doc__)
    parser.add_argument("--monitor-url", default="http://127.0.0.1:8222")
    parser.add_argument("--port", type=int, default=7777)
    parser.add_argument("--host", default="0.0.0.0")  # the pod IP: Prometheus scrapes it
    args = parser.parse_args(argv)
    REGISTRY.register(NatsCollector(args.monitor_url))
    start_http_server(args.port, addr=args.host)
    while True:
        time.sleep(3600)
