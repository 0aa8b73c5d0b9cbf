"""`surge-gateway`: the HTTP ingest API (aiohttp) in front of the JetStream pipeline.

Request path, in order (each step answers with a Problem body and leaves the stream
untouched when it refuses):

1. bearer token -> tenant (401 missing/unknown token)
2. body size (413), JSON (400), schema (422), text size (413), tenant match (403)
3. degradation level (with the cluster's sheddable classes, published with it): shed
   priorities get 429 + Retry-After; throttled ones (sheddable at level 1, the others at
   level 3) share a reduced per-tenant rate, 429 + Retry-After above it
4. per-tenant rate limit (429 + Retry-After)

Every write that reaches step 3 counts as *offered* (per priority, accepted or not); an
:class:`OfferedReporter` publishes the cumulative counts to the degradation bucket about
once a second so the operator can tell demand the gateway is refusing from demand that
went away.
5. publish with Nats-Msg-Id = client id (a retry is deduplicated by JetStream and answered
   ``duplicate: true`` with the original sequence) -> 202 with the stream sequence

A batch is all or nothing up to the publish; messages of an accepted batch are published
pipelined and each gets its own result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.api
import nats.js.errors
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import TypeAdapter, ValidationError

from surge_workers.api_models import (
    AcceptedDict,
    BatchAcceptedDict,
    BatchIn,
    MessageIn,
    Problem,
    Transcript,
    TranscriptMessage,
)
from surge_workers.contract import (
    DEFAULT_SHEDDABLE,
    PRIORITIES,
    THROTTLED_RATE_FRACTION,
    Admission,
    DegradationLevel,
    DegradationState,
    Header,
    OfferedCounts,
    Priority,
    admission,
    degradation_bucket,
    encode_offered,
    format_enqueued_at,
    message_subject,
    offered_key,
    retry_after_seconds,
)
from surge_workers.degradation import DegradationWatcher
from surge_workers.errors import ConfigError
from surge_workers.health import add_health_routes
from surge_workers.logs import get_logger
from surge_workers.metrics import GatewayMetrics
from surge_workers.openapi import openapi_document
from surge_workers.ratelimit import TenantLimiter
from surge_workers.settings import GatewaySettings
from surge_workers.transcripts import read_transcript

PUBLISH_TIMEOUT = 5.0

# Answers are serialized from plain dicts (shaped like Accepted / BatchAccepted, a unit test
# keeps them equal): a pydantic model per accepted message costs more than its publish.
_ACCEPTED_JSON = TypeAdapter(AcceptedDict)
_BATCH_ACCEPTED_JSON = TypeAdapter(BatchAcceptedDict)


def encode_payload(message: MessageIn) -> bytes:
    """The stored body: byte for byte ``json.dumps({"text": ..., "language": ...,
    "channel": ...})`` (optional keys only when set), built with the same C string encoder
    but without a JSONEncoder and a dict per message."""
    body = '{"text": ' + encode_basestring_ascii(message.text)
    if message.language:
        body += ', "language": ' + encode_basestring_ascii(message.language)
    if message.channel:
        body += ', "channel": ' + encode_basestring_ascii(message.channel)
    return (body + "}").encode()


def utf8_length(text: str) -> int:
    # isascii() is O(1) on CPython (a flag of the str object): no encode for ASCII text.
    return len(text) if text.isascii() else len(text.encode())


class Refused(Exception):  # noqa: N818 - control flow, turned into an HTTP answer
    def __init__(
        self, status: int, error: str, detail: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def problem(
    status: int, error: str, detail: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    body = Problem(error=error, detail=detail).model_dump_json()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def load_tokens(path: str | Path) -> dict[str, str]:
    """``{"tenant": ["token", ...]}`` (or a single token string) -> {token: tenant}."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"SURGE_TOKENS_FILE {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"SURGE_TOKENS_FILE {path}: expected a JSON object of tenants")
    tokens: dict[str, str] = {}
    for tenant, value in doc.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"SURGE_TOKENS_FILE {path}: tenant {tenant!r} needs token strings")
        for token in values:
            tokens[token] = tenant
    return tokens


class TokenFile:
    """The tokens file, re-read when it changes (a rotated Secret is picked up without a
    restart); checked at most every ``interval`` seconds. A broken new version keeps the
    previous tokens and is logged, rather than locking every tenant out."""

    def __init__(self, path: str | Path, log: Any, interval: float = 5.0) -> None:
        self.path = Path(path)
        self.log = log
        self.interval = interval
        # Load first: a missing or broken file is a ConfigError naming the path.
        self.tokens = load_tokens(self.path)
        self._mtime = self.path.stat().st_mtime
        self._checked = time.monotonic()

    def current(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self.tokens
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self.tokens = load_tokens(self.path)
                self._mtime = mtime
                self.log.info("tokens_reloaded", tenants=len(set(self.tokens.values())))
        except (OSError, ConfigError) as err:
            self.log.error("tokens_reload_failed", error=str(err))
        return self.tokens


def _validation_detail(err: ValidationError) -> str:
    parts = []
    for item in err.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where or 'body'}: {item.get('msg', '')}")
    return "; ".join(parts)


Ack = dict[str, Any]  # a JetStream publish ack: {"stream": ..., "seq": ..., "duplicate"?: true}
Publication = tuple[str, bytes, dict[str, str]]  # subject, payload, headers


class _PendingBatch:
    __slots__ = ("acks", "done", "missing")

    def __init__(self, size: int) -> None:
        self.acks: list[Ack | None] = [None] * size
        self.missing = size
        self.done: asyncio.Future[list[Ack]] = asyncio.get_running_loop().create_future()

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class JetStreamPublisher:
    """Pipelined JetStream publishing that waits once per batch.

    Each message is a JetStream publish with its own reply subject and counts as stored only
    once its own ack (stream + sequence) is back; a batch resolves when every one of its
    acks is in and fails on the first error reply (no stream, JetStream API error) or after
    ``timeout``. That is ``js.publish_async`` + ``gather`` without the per-message future,
    semaphore, random token and PubAck dataclass, which cost the gateway more than the
    publish itself. One reply subscription serves all batches. At most ``max_in_flight``
    messages await their acks at once (publish_async's default pending limit); a batch
    waits for room, and one larger than the limit goes alone.
    """

    def __init__(
        self, nc: Client, timeout: float = PUBLISH_TIMEOUT, max_in_flight: int = 4000
    ) -> None:
        self.nc = nc
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._prefix = ""
        self._subscribing = asyncio.Lock()
        self._batches: dict[str, _PendingBatch] = {}
        self._ids = itertools.count()
        self._in_flight = 0
        self._room = asyncio.Event()

    async def publish(self, publications: Sequence[Publication]) -> list[Ack]:
        """The acks, in order; raises a nats error or TimeoutError when any is missing."""
        if not publications:
            return []
        if not self._prefix:
            await self._subscribe()
        count = len(publications)
        while self._in_flight and self._in_flight + count > self.max_in_flight:
            self._room.clear()
            await self._room.wait()
        self._in_flight += count
        batch_id = str(next(self._ids))
        batch = self._batches[batch_id] = _PendingBatch(count)
        reply = f"{self._prefix}{batch_id}."
        publish = self.nc.publish
        try:
            for index, (subject, payload, headers) in enumerate(publications):
                await publish(subject, payload, reply=reply + str(index), headers=headers)
            return await asyncio.wait_for(batch.done, self.timeout)
        finally:
            del self._batches[batch_id]
            self._in_flight -= count
            self._room.set()
            if batch.done.done() and not batch.done.cancelled():
                batch.done.exception()  # retrieved: an error reply during a failed send

    async def _subscribe(self) -> None:
        async with self._subscribing:
            if not self._prefix:
                prefix = self.nc.new_inbox() + "."
                await self.nc.subscribe(prefix + "*.*", cb=self._on_reply)
                self._prefix = prefix

    async def _on_reply(self, msg: Msg) -> None:
        batch_id, _, index = msg.subject[len(self._prefix) :].partition(".")
        batch = self._batches.get(batch_id)
        if batch is None or batch.done.done():
            return  # late: its batch already failed or timed out
        try:
            position = int(index)
            if batch.acks[position] is not None:
                return
        except (ValueError, IndexError):
            return  # not a reply subject this publisher made
        if msg.headers and msg.headers.get(nats.js.api.Header.STATUS) == "503":
            batch.fail(nats.js.errors.NoStreamResponseError())
            return
        try:
            ack = json.loads(msg.data)
        except ValueError:
            ack = None
        if not isinstance(ack, dict) or "error" in ack or "seq" not in ack:
            error = ack.get("error") if isinstance(ack, dict) else None
            error = error if isinstance(error, dict) else {}
            batch.fail(
                nats.js.errors.APIError(
                    code=error.get("code"),
                    err_code=error.get("err_code"),
                    description=str(error.get("description", f"unexpected ack {msg.data!r}")),
                )
            )
            return
        batch.acks[position] = ack
        batch.missing -= 1
        if not batch.missing:
            batch.done.set_result(batch.acks)  # type: ignore[arg-type]  # all filled


@dataclass
class Gateway:
    """The API's state; ``nc`` is None only in unit tests of the refusal paths."""

    settings: GatewaySettings
    tokens: dict[str, str]
    nc: Client | None
    metrics: GatewayMetrics
    log: Any
    clock: Callable[[], float] = time.monotonic
    token_file: TokenFile | None = None  # when set, replaces ``tokens`` as it changes

    def __post_init__(self) -> None:
        self.level = DegradationLevel.NORMAL
        self.sheddable = DEFAULT_SHEDDABLE
        #: Writes offered per priority since start (accepted or refused at admission).
        self.offered: dict[Priority, int] = dict.fromkeys(PRIORITIES, 0)
        self.limiter = TenantLimiter(
            self.settings.rate_limit, self.settings.rate_burst, THROTTLED_RATE_FRACTION
        )
        self.js = self.nc.jetstream() if self.nc is not None else None
        self.publisher = JetStreamPublisher(self.nc) if self.nc is not None else None

    def on_degradation(self, state: DegradationState) -> None:
        self.level = state.level
        self.sheddable = state.sheddable
        self.metrics.degradation_level.set(int(state.level))

    def ready(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # --- refusal steps (pure apart from the limiter's state) ---------------------------------

    def tenant_of(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(
                401, "unauthorized", "bearer token required", {"WWW-Authenticate": "Bearer"}
            )
        if self.token_file is not None:
            self.tokens = self.token_file.current()
        tenant = self.tokens.get(token.strip())
        if tenant is None:
            raise Refused(401, "unauthorized", "unknown token", {"WWW-Authenticate": "Bearer"})
        return tenant

    async def read_body(self, request: web.Request) -> bytes:
        if request.content_length is not None and (
            request.content_length > self.settings.max_body_bytes
        ):
            raise Refused(413, "too_large", f"body above {self.settings.max_body_bytes} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge as err:
            raise Refused(
                413, "too_large", f"body above {self.settings.max_body_bytes} bytes"
            ) from err

    def check_messages(self, tenant: str, messages: list[MessageIn]) -> None:
        limit = self.settings.max_text_bytes
        for message in messages:
            if utf8_length(message.text) > limit:
                raise Refused(413, "too_large", f"message {message.id}: text above {limit} bytes")
            if message.tenant is not None and message.tenant != tenant:
                raise Refused(
                    403, "wrong_tenant", f"message {message.id}: token is not for that tenant"
                )

    def admit(self, tenant: str, messages: list[MessageIn]) -> None:
        offered = self.offered
        if len(messages) == 1:
            offered[messages[0].priority] += 1
        else:
            for message in messages:
                offered[message.priority] += 1
        level, sheddable = self.level, self.sheddable
        throttled = 0
        throttled_classes: list[Priority] = []
        # One decision per priority present (in order of first appearance), not per message.
        for priority in dict.fromkeys(message.priority for message in messages):
            decision = admission(level, priority, sheddable)
            if decision is Admission.SHED:
                self.metrics.rejected(priority.value, "degraded")
                raise Refused(
                    429,
                    "degraded",
                    f"degradation level {int(level)} sheds {priority.value} messages",
                    {"Retry-After": str(retry_after_seconds(level, priority, sheddable))},
                )
            if decision is Admission.THROTTLE:
                throttled += sum(1 for message in messages if message.priority is priority)
                throttled_classes.append(priority)
        now = self.clock()
        if throttled:
            wait = self.limiter.take(tenant, throttled, now, throttled=True)
            if wait > 0:
                self.metrics.rejected(throttled_classes[0].value, "throttled")
                names = ", ".join(p.value for p in throttled_classes)
                raise Refused(
                    429,
                    "throttled",
                    f"degradation level {int(level)} throttles {names} messages",
                    {"Retry-After": str(max(1, int(wait + 0.999)))},
                )
        wait = self.limiter.take(tenant, len(messages), now)
        if wait > 0:
            self.metrics.rejected(messages[0].priority.value, "rate_limited")
            raise Refused(
                429,
                "rate_limited",
                f"tenant {tenant} is above its rate limit",
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    # --- publishing ----------------------------------------------------------------------------

    async def publish(self, tenant: str, messages: list[MessageIn]) -> list[AcceptedDict]:
        if self.publisher is None or self.nc is None or not self.nc.is_connected:
            raise Refused(503, "unavailable", "not connected to NATS", {"Retry-After": "1"})
        pipeline = self.settings.pipeline
        prefix, partitions = pipeline.subject_prefix, pipeline.partitions
        now = format_enqueued_at(time.time())
        publications = [
            (
                message_subject(prefix, message.priority, message.conversation_id, partitions),
                encode_payload(message),
                {
                    Header.MSG_ID: message.id,
                    Header.CONVERSATION: message.conversation_id,
                    Header.TENANT: tenant,
                    Header.PRIORITY: message.priority.value,
                    Header.ENQUEUED_AT: now,
                },
            )
            for message in messages
        ]
        started = time.perf_counter()
        try:
            # Pipelined: send all, then wait for all acks (each is still confirmed).
            acks = await self.publisher.publish(publications)
        except (nats.errors.Error, TimeoutError) as err:
            self.log.warning("publish_failed", tenant=tenant, error=str(err) or repr(err))
            raise Refused(
                503, "unavailable", "stream did not confirm", {"Retry-After": "1"}
            ) from err
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        return self._accepted(messages, acks)

    def _accepted(self, messages: list[MessageIn], acks: list[Ack]) -> list[AcceptedDict]:
        results: list[AcceptedDict] = []
        per_priority: dict[Priority, int] = {}
        duplicates = 0
        for message, ack in zip(messages, acks, strict=True):
            per_priority[message.priority] = per_priority.get(message.priority, 0) + 1
            duplicate = bool(ack.get("duplicate", False))
            duplicates += duplicate
            results.append(
                {
                    "id": message.id,
                    "stream": ack["stream"],
                    "seq": ack["seq"],
                    "duplicate": duplicate,
                }
            )
        # Counters once per request and priority: each inc() takes a lock.
        for priority, count in per_priority.items():
            self.metrics.accepted[priority].inc(count)
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        return results

    # --- handlers ------------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        tenant = self.tenant_of(request)
        body = await self.read_body(request)
        message = _parse(MessageIn, body)
        self.check_messages(tenant, [message])
        self.admit(tenant, [message])
        (result,) = await self.publish(tenant, [message])
        return web.Response(
            status=202, body=_ACCEPTED_JSON.dump_json(result), content_type="application/json"
        )

    async def post_batch(self, request: web.Request) -> web.Response:
        tenant = self.tenant_of(request)
        body = await self.read_body(request)
        batch = _parse(BatchIn, body)
        if len(batch.messages) > self.settings.max_batch_messages:
            raise Refused(
                413, "too_large", f"more than {self.settings.max_batch_messages} messages"
            )
        self.check_messages(tenant, batch.messages)
        self.admit(tenant, batch.messages)
        results = await self.publish(tenant, batch.messages)
        return web.Response(
            status=202,
            body=_BATCH_ACCEPTED_JSON.dump_json({"results": results}),
            content_type="application/json",
        )

    async def get_transcript(self, request: web.Request) -> web.Response:
        tenant = self.tenant_of(request)
        conversation_id = request.match_info["conversation_id"]
        if self.js is None:
            raise Refused(503, "unavailable", "not connected to NATS", {"Retry-After": "1"})
        try:
            entries = await read_transcript(self.js, self.settings.pipeline.stream, conversation_id)
        except (nats.errors.Error, TimeoutError) as err:
            raise Refused(503, "unavailable", str(err), {"Retry-After": "1"}) from err
        if not entries or any(e.tenant != tenant for e in entries):
            # Another tenant's conversation is indistinguishable from a missing one.
            raise Refused(404, "not_found", "no such conversation")
        transcript = Transcript(
            conversation_id=conversation_id,
            team=entries[0].team,
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
                for e in entries
            ],
        )
        return web.Response(body=transcript.model_dump_json(), content_type="application/json")


def instance_name() -> str:
    """This gateway's name among its replicas: the pod name when set, else host-pid."""
    for variable in ("POD_NAME", "SURGE_INSTANCE"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return f"{socket.gethostname()}-{os.getpid()}"


class OfferedReporter:
    """Publishes the gateway's cumulative offered counts to ``offered.<instance>`` in the
    degradation bucket every ``interval`` seconds. A failed put is logged and retried on
    the next round; it never touches ingest."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        instance: str | None = None,
        interval: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.key = offered_key(instance or instance_name())
        self.interval = interval
        self.wall_clock = wall_clock
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"report-{self.key}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def report_once(self) -> None:
        js = self.gateway.js
        if js is None:
            return
        offered = OfferedCounts(at=self.wall_clock(), counts=dict(self.gateway.offered))
        kv = await js.key_value(degradation_bucket(self.gateway.settings.pipeline.stream))
        await kv.put(self.key, encode_offered(offered))

    async def run(self) -> None:
        log = self.gateway.log
        while True:
            try:
                await asyncio.wait_for(self.report_once(), timeout=max(self.interval, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as err:  # reporting must never stop ingest
                (log.debug if self._failing else log.warning)(
                    "offered_report_failed", key=self.key, error=str(err) or repr(err)
                )
                self._failing = True
            else:
                if self._failing:
                    log.info("offered_report_recovered", key=self.key)
                self._failing = False
            await asyncio.sleep(self.interval)


def _parse(model: Any, body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        if any(e.get("type") == "json_invalid" for e in err.errors()):
            raise Refused(400, "malformed_json", _validation_detail(err)) from err
        raise Refused(422, "invalid", _validation_detail(err)) from err


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(gateway: Gateway) -> web.Application:
    metrics = gateway.metrics
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
    app.router.add_post("/v1/messages", gateway.post_message)
    app.router.add_post("/v1/messages/batch", gateway.post_batch)
    app.router.add_get("/v1/conversations/{conversation_id}/transcript", gateway.get_transcript)
    app.router.add_get("/openapi.json", openapi)
    add_health_routes(app, metrics.registry, gateway.ready)
    return app


async def run_gateway(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    from surge_workers.runtime import connect, stop_event

    log = get_logger("gateway", stream=settings.pipeline.stream, cluster=settings.pipeline.cluster)
    if not settings.tokens_file:
        raise ConfigError("SURGE_TOKENS_FILE is required: the gateway never runs without auth")
    token_file = TokenFile(settings.tokens_file, log)
    tokens = token_file.tokens
    stop = stop or stop_event()
    nc = await connect(settings.nats, f"surge-gateway/{settings.pipeline.cluster}", log)
    gateway = Gateway(
        settings=settings,
        tokens=tokens,
        nc=nc,
        metrics=GatewayMetrics(),
        log=log,
        token_file=token_file,
    )
    watcher = DegradationWatcher(
        nc.jetstream(), settings.pipeline.stream, gateway.on_degradation, log=log
    )
    watcher.start()
    reporter = OfferedReporter(gateway)
    reporter.start()
    runner = web.AppRunner(build_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info(
        "gateway_started", host=settings.host, port=settings.port, tenants=len(set(tokens.values()))
    )
    try:
        await stop.wait()
    finally:
        log.info("gateway_stopping")
        await runner.cleanup()  # stops accepting, lets in-flight requests finish
        await reporter.stop()
        await watcher.stop()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.drain()
