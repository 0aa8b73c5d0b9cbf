"""/healthz, /readyz and /metrics for the worker (the gateway mounts the same routes)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def add_health_routes(
    app: web.Application, registry: CollectorRegistry, ready: Callable[[], bool]
) -> None:
    async def healthz(_: web.Request) -> web.Response:
        # Answering at all proves the event loop is alive; that is what liveness means here.
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def start_health_server(
    host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
) -> web.AppRunner:
    app = web.Application()
    add_health_routes(app, registry, ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
