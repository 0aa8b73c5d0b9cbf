"""The aiohttp application: routes, and the middleware that turns refusals into Problems
and counts every answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from surge_workers.gateway import handlers
from surge_workers.gateway.events import ConversationEvents
from surge_workers.gateway.refusals import Refused, problem
from surge_workers.gateway.service import Gateway
from surge_workers.health import add_health_routes
from surge_workers.openapi import openapi_document
from surge_workers.reply_metrics import SseMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(gateway: Gateway, events: ConversationEvents | None = None) -> web.Application:
    metrics = gateway.metrics
    events = events or ConversationEvents(gateway, SseMetrics(metrics.registry))
    log = gateway.log
    document = openapi_document()

    @web.middleware
    async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except Refused as err:
            response = problem(err.status, err.error, err.detail, err.headers)
        except web.HTTPRequestEntityTooLarge:
            response = problem(413, "too_large", "body too large")
        except web.HTTPException as err:
            response = problem(err.status, err.reason.lower().replace(" ", "_"), err.text or "")
        except Exception:
            log.exception("request_failed", route=name)
            response = problem(500, "internal", "unexpected error")
        metrics.requests.labels(name, str(response.status)).inc()
        return response

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application(middlewares=[refusals], client_max_size=gateway.settings.max_body_bytes)
    app.router.add_post("/v1/messages", partial(handlers.post_message, gateway))
    app.router.add_post("/v1/messages/batch", partial(handlers.post_batch, gateway))
    app.router.add_get(
        "/v1/conversations/{conversation_id}/transcript",
        partial(handlers.get_transcript, gateway),
    )
    app.router.add_get("/v1/conversations/{conversation_id}/events", events.get_events)
    app.router.add_post("/v1/conversations/{conversation_id}/replies", events.post_reply)
    app.router.add_get("/openapi.json", openapi)
    add_health_routes(app, metrics.registry, gateway.ready)
    return app
