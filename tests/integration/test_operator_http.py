"""The operator's HTTP side: /healthz for liveness (leader or standby), /readyz, /metrics."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from surge_operator.metrics import OperatorMetrics
from surge_operator.run import _serve
from surge_operator.settings import OperatorConfig, ServerSettings

pytestmark = [pytest.mark.integration]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_readiness_and_metrics() -> None:
    health, metrics_port = _port(), _port()
    config = OperatorConfig(
        server=ServerSettings(health_port=health, metrics_port=metrics_port, host="127.0.0.1")
    )
    metrics = OperatorMetrics()
    metrics.reconciles.labels(outcome="success").inc()
    state = {"leader": False, "ready": False}
    runner = await _serve(config, metrics, state)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{health}/healthz") as r:
                assert r.status == 200
                assert await r.json() == {"ok": True, "leader": False}
            async with http.get(f"http://127.0.0.1:{health}/readyz") as r:
                assert r.status == 503
            state["ready"] = True
            async with http.get(f"http://127.0.0.1:{health}/readyz") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                text = await r.text()
            assert 'surge_operator_reconciles_total{outcome="success"} 1.0' in text
    finally:
        await runner.cleanup()
