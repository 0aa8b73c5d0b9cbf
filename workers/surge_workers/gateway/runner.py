"""`surge-gateway`'s process: tokens, NATS, the degradation watcher, the offered-counts
reporter and the HTTP site, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
from aiohttp import web

from surge_workers.degradation import DegradationWatcher
from surge_workers.errors import ConfigError
from surge_workers.gateway.app import build_app
from surge_workers.gateway.auth import TokenFile
from surge_workers.gateway.events import ConversationEvents
from surge_workers.gateway.offered import OfferedReporter
from surge_workers.gateway.service import Gateway
from surge_workers.logs import get_logger
from surge_workers.metrics import GatewayMetrics
from surge_workers.reply_metrics import SseMetrics
from surge_workers.settings import GatewaySettings

#: How long stopping waits for in-flight requests. aiohttp's default (60 s) outlasts the
#: 30 s the pod gets after SIGTERM, so a gateway stopped mid-surge was SIGKILLed (exit 137)
#: before its offered counts and NATS connection were drained.
HTTP_SHUTDOWN_SECONDS = 15.0


async def run_gateway(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    from surge_workers.runtime import connect_when_available, stop_event

    log = get_logger("gateway", stream=settings.pipeline.stream, cluster=settings.pipeline.cluster)
    if not settings.tokens_file:
        raise ConfigError("SURGE_TOKENS_FILE is required: the gateway never runs without auth")
    token_file = TokenFile(settings.tokens_file, log)
    tokens = token_file.tokens
    stop = stop or stop_event()
    gateway = Gateway(
        settings=settings,
        tokens=tokens,
        nc=None,
        metrics=GatewayMetrics(),
        log=log,
        token_file=token_file,
    )
    # HTTP first: /healthz answers and /readyz says "not ready" (writes get 503) while
    # NATS is unreachable, instead of a crash loop.
    events = ConversationEvents(gateway, SseMetrics(gateway.metrics.registry))
    runner = web.AppRunner(
        build_app(gateway, events), access_log=None, shutdown_timeout=HTTP_SHUTDOWN_SECONDS
    )
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info("gateway_started", host=settings.host, port=settings.port, tenants=len(tokens.tenants))
    nc = await connect_when_available(
        settings.nats, f"surge-gateway/{settings.pipeline.cluster}", log, stop
    )
    if nc is None:
        await runner.cleanup()
        return
    gateway.attach(nc)
    log.info("gateway_connected")
    watcher = DegradationWatcher(
        nc.jetstream(), settings.pipeline.stream, gateway.on_degradation, log=log
    )
    watcher.start()
    reporter = OfferedReporter(gateway)
    reporter.start()
    try:
        await stop.wait()
    finally:
        log.info("gateway_stopping")
        events.close()  # event streams end now; clients resume elsewhere from Last-Event-ID
        await runner.cleanup()  # stops accepting, lets in-flight requests finish
        await reporter.stop()
        await watcher.stop()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.drain()
