"""A gateway served in-process against a real nats-server, for the gateway's integration
tests: tokens for two tenants, free port, degradation watcher running."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from tests.integration.dataplane_support import connect

from surge_workers.degradation import DegradationWatcher
from surge_workers.gateway import Gateway, TokenTable, build_app
from surge_workers.logs import get_logger
from surge_workers.metrics import GatewayMetrics
from surge_workers.natsserver import free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.settings import GatewaySettings, PipelineSettings

TOKENS = {"acme": ["acme-token"], "globex": ["globex-token"]}
ACME = {"Authorization": "Bearer acme-token"}


def message(msg_id: str = "m1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": msg_id,
        "conversation_id": "conv1",
        "tenant": "acme",
        "priority": "normal",
        "text": "my invoice is wrong",
        "language": "en",
    }
    body.update(fields)
    return body


@contextlib.asynccontextmanager
async def running_gateway(
    url: str,
    config: PipelineConfig,
    tmp_path: Path,
    *,
    tokens: dict[str, list[str]] | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[str, Gateway]]:
    by_tenant = TOKENS if tokens is None else tokens
    os.makedirs(tmp_path, exist_ok=True)
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(by_tenant))
    settings = GatewaySettings(
        pipeline=PipelineSettings(
            stream=config.stream, subject_prefix=config.subject_prefix, partitions=config.partitions
        ),
        host="127.0.0.1",
        port=free_port(),
        tokens_file=str(tokens_file),
        max_body_bytes=8192,
        max_text_bytes=1024,
        rate_limit=0,
    )
    settings = replace(settings, **overrides)
    nc = await connect(url)
    by_token = {t: tenant for tenant, ts in by_tenant.items() for t in ts}
    gateway = Gateway(
        settings, TokenTable.from_tokens(by_token), nc, GatewayMetrics(), get_logger("test-gateway")
    )
    watcher = DegradationWatcher(nc.jetstream(), config.stream, gateway.on_degradation)
    watcher.start()
    runner = web.AppRunner(build_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    try:
        yield f"http://127.0.0.1:{settings.port}", gateway
    finally:
        await runner.cleanup()
        await watcher.stop()
        await nc.close()
