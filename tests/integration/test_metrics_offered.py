"""Offered demand end to end against a real nats-server: an in-process gateway at level 3
throttles normal writes, reports what it was offered to the degradation bucket, and the
operator's metrics source turns that into an offered rate above the accepted one."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tests.integration.dataplane_support import connect, provisioned, unique_pipeline

from surge_operator.api import Priority
from surge_operator.metrics_source import JetStreamMetricsSource
from surge_workers.contract import DegradationLevel
from surge_workers.degradation import DegradationWatcher, publish_degradation
from surge_workers.gateway import Gateway, OfferedReporter, TokenTable, build_app
from surge_workers.logs import get_logger
from surge_workers.metrics import GatewayMetrics
from surge_workers.natsserver import free_port
from surge_workers.settings import GatewaySettings, PipelineSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_throttled_normal_traffic_shows_as_offered_above_accepted(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    await publish_degradation(js, config.stream, DegradationLevel.CRITICAL_ONLY, "test")
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps({"acme": ["acme-token"]}))
    settings = GatewaySettings(
        pipeline=PipelineSettings(
            stream=config.stream, subject_prefix=config.subject_prefix, partitions=config.partitions
        ),
        host="127.0.0.1",
        port=free_port(),
        tokens_file=str(tokens_file),
        rate_limit=20,  # throttled normal gets a tenth of it: 2/s
        rate_burst=20,
    )
    gw_nc = await connect(nats_url)
    gateway = Gateway(
        settings,
        TokenTable.from_tokens({"acme-token": "acme"}),
        gw_nc,
        GatewayMetrics(),
        get_logger("t"),
    )
    watcher = DegradationWatcher(gw_nc.jetstream(), config.stream, gateway.on_degradation)
    watcher.start()
    reporter = OfferedReporter(gateway, instance=f"gw-{uuid.uuid4().hex[:6]}", interval=0.1)
    reporter.start()
    runner = web.AppRunner(build_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    source = JetStreamMetricsSource(js, config)
    try:
        for _ in range(100):
            if gateway.level is DegradationLevel.CRITICAL_ONLY:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the reporter's first counters are in the bucket
        await source.snapshot(at=0.0, current_replicas=1, ready_replicas=1)  # baseline

        statuses: list[int] = []
        url = f"http://127.0.0.1:{settings.port}/v1/messages"
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer acme-token"}) as http:
            for i in range(60):
                body = {"id": f"m{i}", "conversation_id": f"c{i % 5}", "priority": "normal"}
                async with http.post(url, json={**body, "text": "hi"}) as response:
                    statuses.append(response.status)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.4)  # at least one report after the last write
        snap = await source.snapshot(at=1.0, current_replicas=1, ready_replicas=1)
    finally:
        await runner.cleanup()
        await reporter.stop()
        await watcher.stop()
        await gw_nc.close()
        await nc.close()

    assert statuses.count(429) > 30
    assert statuses.count(202) >= 1
    normal = snap.priorities[Priority.NORMAL]
    assert normal.arrival_rate is not None
    assert normal.offered_rate is not None
    assert normal.offered_rate > 5 * max(normal.arrival_rate, 0.1)
    assert snap.priorities[Priority.BULK].offered_rate == 0.0
