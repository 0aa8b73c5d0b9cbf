"""The HTTP handlers of the ingest API: each reads the request, runs the gateway's refusal
steps in order and answers (a :class:`Refused` becomes a Problem in the app's middleware)."""

from __future__ import annotations

import nats.errors
from aiohttp import web

from surge_workers.api_models import (
    TRANSCRIPT_PAGE,
    TRANSCRIPT_PAGE_MAX,
    BatchIn,
    MessageIn,
    Transcript,
    TranscriptMessage,
)
from surge_workers.gateway.encoding import ACCEPTED_JSON, BATCH_ACCEPTED_JSON
from surge_workers.gateway.refusals import Refused, parse_body
from surge_workers.gateway.service import Gateway
from surge_workers.transcripts import read_transcript


async def post_message(gateway: Gateway, request: web.Request) -> web.Response:
    tenant = gateway.tenant_of(request)
    body = await gateway.read_body(request)
    message = parse_body(MessageIn, body)
    gateway.check_messages(tenant, [message])
    gateway.admit(tenant, [message])
    (result,) = await gateway.publish(tenant, [message])
    return web.Response(
        status=202, body=ACCEPTED_JSON.dump_json(result), content_type="application/json"
    )


async def post_batch(gateway: Gateway, request: web.Request) -> web.Response:
    tenant = gateway.tenant_of(request)
    body = await gateway.read_body(request)
    batch = parse_body(BatchIn, body)
    if len(batch.messages) > gateway.settings.max_batch_messages:
        raise Refused(413, "too_large", f"more than {gateway.settings.max_batch_messages} messages")
    gateway.check_messages(tenant, batch.messages)
    gateway.admit(tenant, batch.messages)
    results = await gateway.publish(tenant, batch.messages)
    return web.Response(
        status=202,
        body=BATCH_ACCEPTED_JSON.dump_json({"results": results}),
        content_type="application/json",
    )


def _page_query(request: web.Request) -> tuple[int, int]:
    """(limit, after_seq) from ?limit= and ?cursor=; 422 naming the parameter otherwise."""
    raw_limit = request.query.get("limit", str(TRANSCRIPT_PAGE))
    raw_cursor = request.query.get("cursor", "0")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= TRANSCRIPT_PAGE_MAX:
        raise Refused(422, "invalid", f"limit: an integer within 1..{TRANSCRIPT_PAGE_MAX}")
    if not raw_cursor.isdigit() or len(raw_cursor) > 20:
        raise Refused(422, "invalid", "cursor: the next_cursor of a previous page")
    return int(raw_limit), int(raw_cursor)


async def get_transcript(gateway: Gateway, request: web.Request) -> web.Response:
    tenant = gateway.tenant_of(request)
    conversation_id = request.match_info["conversation_id"]
    limit, after = _page_query(request)
    if gateway.js is None:
        raise Refused(503, "unavailable", "not connected to NATS", {"Retry-After": "1"})
    try:
        entries = await read_transcript(
            gateway.js, gateway.settings.pipeline.stream, tenant, conversation_id
        )
    except (nats.errors.Error, TimeoutError) as err:
        raise Refused(503, "unavailable", str(err), {"Retry-After": "1"}) from err
    if not entries or any(e.tenant != tenant for e in entries):
        # Another tenant's conversation is indistinguishable from a missing one.
        raise Refused(404, "not_found", "no such conversation")
    team = entries[0].team
    following = [e for e in entries if e.seq > after]
    page = following[:limit]
    more = len(following) > limit
    transcript = Transcript(
        conversation_id=conversation_id,
        team=team,
        next_cursor=str(page[-1].seq) if more else None,
        messages=[
            TranscriptMessage(
                id=e.msg_id,
                seq=e.seq,
                priority=e.priority,
                team=e.team,
                text=e.text,
                language=e.language,
                enqueued_at=e.enqueued_at,
                stored_at=e.stored_at,
            )
            for e in page
        ],
    )
    return web.Response(body=transcript.model_dump_json(), content_type="application/json")
