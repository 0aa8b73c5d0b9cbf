"""A conversation's replies over HTTP: Server-Sent Events out, agents' replies in.

``GET /v1/conversations/{id}/events`` streams the replies of the caller's own tenant's
conversation (acknowledgements, notices, agents' answers) as Server-Sent Events, each
with ``id:`` = its sequence in the replies stream. The subject read is built from the
tenant of the bearer token, never from the request, so no token can open another
tenant's stream: asking for another tenant's conversation id reads the caller's own
(empty) conversation of that name. ``Last-Event-ID`` (sent by every EventSource on
reconnect) resumes right after that sequence: stream sequences never repeat, so resuming
neither skips nor repeats an event, whichever gateway replica answers and however often
it restarted. ``follow=false`` returns what is stored and ends (polling clients, tests).

``POST /v1/conversations/{id}/replies`` stores an agent's reply on the same subject,
with a deterministic ``Nats-Msg-Id`` from the tenant and reply id (a retry is stored
once), so agents' answers reach the customer exactly like the composer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Final

import nats.errors
from aiohttp import web

from surge_workers.api_models import AgentReplyIn, ReplyAccepted, ReplyEventData
from surge_workers.contract import ID_PATTERN
from surge_workers.gateway.encoding import utf8_length
from surge_workers.gateway.refusals import Refused, parse_body
from surge_workers.gateway.service import Gateway
from surge_workers.replies import Reply, ReplyKind, publish_reply, replies_stream, reply_subject
from surge_workers.reply_feed import ReplyFeedReader, reply_feed
from surge_workers.reply_metrics import SseMetrics

HEARTBEAT_S: Final = 15.0
RETRY_MS: Final = 2000
_ID_RE: Final = re.compile(ID_PATTERN)
_SEQ_RE: Final = re.compile(r"[0-9]{1,19}")
_QUERY: Final = frozenset({"follow"})
_UNAVAILABLE = {"Retry-After": "1"}


def last_event_id(request: web.Request) -> int:
    """The sequence to resume after: the ``Last-Event-ID`` header (0 when absent)."""
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        return 0
    if not _SEQ_RE.fullmatch(raw):
        raise Refused(400, "bad_last_event_id", "Last-Event-ID must be a stream sequence")
    return int(raw)


def follow_of(request: web.Request) -> bool:
    unknown = sorted(set(request.query) - _QUERY)
    if unknown:
        raise Refused(422, "invalid", f"unknown query parameter {unknown[0]!r}")
    if len(request.query.getall("follow", [])) > 1:
        raise Refused(422, "invalid", "follow: given more than once")
    raw = request.query.get("follow", "true")
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise Refused(422, "invalid", "follow: must be true or false")


def conversation_of(request: web.Request) -> str:
    conversation = request.match_info["conversation_id"]
    if not _ID_RE.match(conversation):
        raise Refused(422, "invalid", f"conversation_id: must match {ID_PATTERN}")
    return conversation


def sse_frame(seq: int, reply: Reply) -> bytes:
    data = ReplyEventData(
        kind=reply.kind.value,
        conversation_id=reply.conversation_id,
        in_reply_to=reply.in_reply_to,
        text=reply.text,
        created_at=reply.created_at,
        priority=reply.priority,
        position=reply.position,
        expected_wait_s=reply.expected_wait_s,
        enqueued_at=reply.enqueued_at,
        degradation_level=reply.degradation_level,
        author=reply.author,
    ).model_dump_json()
    return f"id: {seq}\nevent: {reply.kind.value}\ndata: {data}\n\n".encode()


class ConversationEvents:
    """The two routes, and the open streams (closed first when the gateway stops)."""

    def __init__(self, gateway: Gateway, metrics: SseMetrics) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.closing = asyncio.Event()

    def close(self) -> None:
        """End every open stream (clients reconnect elsewhere with Last-Event-ID)."""
        self.closing.set()

    async def get_events(self, request: web.Request) -> web.StreamResponse:
        gateway = self.gateway
        tenant = gateway.tenant_of(request)
        conversation = conversation_of(request)
        after = last_event_id(request)
        follow = follow_of(request)
        if gateway.js is None or self.closing.is_set():
            raise Refused(503, "unavailable", "not connected to NATS", _UNAVAILABLE)
        pipeline = gateway.settings.pipeline
        subject = reply_subject(pipeline.subject_prefix, tenant, conversation)
        log = gateway.log.bind(tenant=tenant, conversation=conversation, after=after)
        async with contextlib.AsyncExitStack() as stack:
            try:
                feed = await stack.enter_async_context(
                    reply_feed(gateway.js, replies_stream(pipeline.stream), subject, after)
                )
            except (nats.errors.Error, TimeoutError) as err:
                raise Refused(503, "unavailable", f"replies stream: {err}", _UNAVAILABLE) from err
            response = web.StreamResponse(
                status=200,
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # proxies must not hold events back
                },
            )
            self.metrics.clients.inc()
            stack.callback(self.metrics.clients.dec)
            try:
                await response.prepare(request)
                await response.write(f"retry: {RETRY_MS}\n\n".encode())
                if follow:
                    await self._follow(feed, response)
                else:
                    for event in await feed.stored():
                        await self._send(response, event.seq, event.reply)
                await response.write_eof()
            except ConnectionResetError:
                log.debug("sse_client_gone")
            return response

    async def _send(self, response: web.StreamResponse, seq: int, reply: Reply | None) -> None:
        if reply is not None:  # anything else on the subject is not for customers
            await response.write(sse_frame(seq, reply))
            self.metrics.events.inc()

    async def _follow(self, feed: ReplyFeedReader, response: web.StreamResponse) -> None:
        """Events as they are stored, a comment line as heartbeat, until the client leaves
        or the gateway stops."""
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while not closing.done():
                upcoming = asyncio.ensure_future(feed.next())
                done, _ = await asyncio.wait(
                    {upcoming, closing}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if upcoming not in done:
                    upcoming.cancel()
                    if not closing.done():
                        await response.write(b": keepalive\n\n")
                    continue
                event = upcoming.result()
                if event is not None:
                    await self._send(response, event.seq, event.reply)
        finally:
            closing.cancel()

    async def post_reply(self, request: web.Request) -> web.Response:
        gateway = self.gateway
        tenant = gateway.tenant_of(request)
        conversation = conversation_of(request)
        body = await gateway.read_body(request)
        reply_in: AgentReplyIn = parse_body(AgentReplyIn, body)
        limit = gateway.settings.max_text_bytes
        if utf8_length(reply_in.text) > limit:
            raise Refused(413, "too_large", f"reply {reply_in.id}: text above {limit} bytes")
        if gateway.js is None or gateway.nc is None or not gateway.nc.is_connected:
            raise Refused(503, "unavailable", "not connected to NATS", _UNAVAILABLE)
        reply = Reply(
            kind=ReplyKind.AGENT,
            tenant=tenant,
            conversation_id=conversation,
            in_reply_to=reply_in.id,
            text=reply_in.text,
            created_at=time.time(),
            author=reply_in.author,
        )
        try:
            published = await publish_reply(
                gateway.js, gateway.settings.pipeline.subject_prefix, reply
            )
        except (nats.errors.Error, TimeoutError) as err:
            gateway.log.warning("reply_publish_failed", tenant=tenant, error=str(err) or repr(err))
            raise Refused(
                503, "unavailable", "replies stream did not confirm", _UNAVAILABLE
            ) from err
        if not published.duplicate:
            self.metrics.sent[ReplyKind.AGENT].inc()
        answer = ReplyAccepted(id=reply_in.id, seq=published.seq, duplicate=published.duplicate)
        return web.Response(
            status=202, body=answer.model_dump_json(), content_type="application/json"
        )
