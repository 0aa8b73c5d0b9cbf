"""`surge simulate --from-prometheus`: a team's own arrivals, read from a real Prometheus.

The gateway's own counters (`GatewayMetrics`) are served over HTTP and scraped by the
Prometheus the fixtures start; writes are counted at known rates per priority, and the
replay must carry those rates through Surge, the team's KEDA setting and the baselines.
"""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client import start_http_server
from tests.fixtures.prometheus import PrometheusServer
from typer.testing import CliRunner

from surge_operator.cli import app
from surge_operator.prometheus_history import HistoryError, parse_end, read_history
from surge_workers.contract import Priority
from surge_workers.metrics import GatewayMetrics
from surge_workers.natsserver import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Accepted writes per second per priority; on top, bulk writes refused with 429.
RATES = {Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 30}
REFUSED_PER_BATCH = 2  # four batches a second: 8 refused bulk writes per second
SECONDS = 25


def test_a_teams_offered_traffic_is_replayed_through_surge_and_its_keda(
    prometheus: PrometheusServer,
) -> None:
    metrics = GatewayMetrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    job = f"gateway-{port}"
    try:
        prometheus.add_targets(job, [f"127.0.0.1:{port}"])
        prometheus.wait_for(f'up{{job="{job}"}}', lambda v: v == 1)
        for _ in range(SECONDS * 4):  # quarter-second batches, bounded in count and time
            for priority, rate in RATES.items():
                metrics.accepted[priority].inc(rate / 4)
            for _ in range(REFUSED_PER_BATCH):
                metrics.rejected(Priority.BULK.value, "degraded")
            time.sleep(0.25)
        time.sleep(3)  # the last scrapes
        arrivals = read_history(
            prometheus.url, range_s=SECONDS - 6, end=parse_end(None), step_s=1.0
        )
        # The middle of the range, away from the edges of rate() windows.
        middle = arrivals.counts[4:-4]
        for priority, rate in RATES.items():
            refused = 4 * REFUSED_PER_BATCH if priority is Priority.BULK else 0
            offered = rate + refused  # what clients offered: the gateway refused some
            mean = sum(c[priority] for c in middle) / len(middle)
            assert mean == pytest.approx(offered, rel=0.25), priority

        runner = CliRunner()
        result = runner.invoke(
            app,
            [
                "simulate", "--from-prometheus", prometheus.url, "--range", f"{SECONDS - 6}s",
                "--keda-lag-threshold", "50", "--json",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["profile"].startswith("prometheus")
        assert doc["settings"]["keda"]["lagThreshold"] == 50
        assert doc["surge"]["accepted"] > 0
        assert doc["lower_bound"]["replica_seconds"] > 0
    finally:
        prometheus.remove_targets(job)
        server.shutdown()
        thread.join(timeout=5)


def test_an_empty_or_bad_history_is_a_clear_error(prometheus: PrometheusServer) -> None:
    with pytest.raises(HistoryError, match="no series"):
        read_history(prometheus.url, range_s=30, end=parse_end(None), query='nothing_here{job="x"}')
    result = CliRunner().invoke(
        app, ["simulate", "--from-prometheus", prometheus.url, "--range", "soon"]
    )
    assert result.exit_code == 2
    assert "--range" in result.output
