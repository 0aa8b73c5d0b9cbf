"""The gateway's state and its refusal steps, in request order, and the publish.

Every write that reaches admission counts as *offered* (per priority, accepted or not);
see :mod:`surge_workers.gateway.offered` for how those counts reach the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.aio.client import Client
from nats.js import JetStreamContext

from surge_workers.api_models import AcceptedDict, MessageIn
from surge_workers.contract import (
    DEFAULT_SHEDDABLE,
    PRIORITIES,
    THROTTLED_RATE_FRACTION,
    Admission,
    DegradationLevel,
    DegradationState,
    Priority,
    admission,
    format_enqueued_at,
    message_headers,
    message_subject,
    retry_after_seconds,
)
from surge_workers.gateway.auth import TokenFile, TokenTable, authenticate
from surge_workers.gateway.encoding import (
    MAX_BYTES_PER_CHAR,
    encode_payload,
    stored_size,
    utf8_length,
)
from surge_workers.gateway.publisher import Ack, JetStreamPublisher, Publication
from surge_workers.gateway.refusals import Refused
from surge_workers.metrics import GatewayMetrics
from surge_workers.ratelimit import AddressLimiter, TenantLimiter
from surge_workers.settings import GatewaySettings

# Same width as format_enqueued_at(now) until the year 2286: sizes computed before the
# publish match the stored ones byte for byte.
_ENQUEUED_AT_WIDTH = format_enqueued_at(2_000_000_000.0)


def publication(
    prefix: str, partitions: int, tenant: str, message: MessageIn, enqueued_at: str
) -> Publication:
    """Subject, payload and headers of one accepted message."""
    return (
        message_subject(
            prefix, message.priority, message.conversation_id, partitions, tenant=tenant
        ),
        encode_payload(message),
        message_headers(
            tenant=tenant,
            msg_id=message.id,
            conversation_id=message.conversation_id,
            priority=message.priority,
            enqueued_at=enqueued_at,
        ),
    )


# JetStream's answers that are not "try again in a second" (nats-server err_code).
_TOO_LARGE = 10054  # message size exceeds maximum allowed
_STREAM_FULL = 10077  # maximum bytes / messages exceeded (discard: new)
STREAM_FULL_RETRY_AFTER = 30


def refusal_for(err: Exception) -> Refused:
    """The HTTP answer to a publish the stream did not confirm."""
    if not isinstance(err, nats.js.errors.APIError):
        return Refused(503, "unavailable", "stream did not confirm", {"Retry-After": "1"})
    code = err.err_code
    if code == _TOO_LARGE:
        return Refused(
            413, "too_large", "message above the stream's limit (spec.stream.maxMsgSize)"
        )
    if code == _STREAM_FULL:
        # Nothing queued is dropped to make room: new writes wait until workers catch up.
        return Refused(
            507,
            "stream_full",
            f"the stream is full ({err.description}); new writes are refused until the "
            "backlog drains, nothing queued was dropped",
            {"Retry-After": str(STREAM_FULL_RETRY_AFTER)},
        )
    return Refused(503, "unavailable", "stream did not confirm", {"Retry-After": "1"})


@dataclass
class Gateway:
    """The API's state; ``nc`` is None only in unit tests of the refusal paths."""

    settings: GatewaySettings
    tokens: TokenTable
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
        self.unauthenticated = AddressLimiter(
            self.settings.unauthenticated_rate, self.settings.unauthenticated_burst
        )
        self.js: JetStreamContext | None = None
        self.publisher: JetStreamPublisher | None = None
        if self.nc is not None:
            self.attach(self.nc)

    def attach(self, nc: Client) -> None:
        """Start publishing through ``nc`` (the HTTP side runs, not ready, before this)."""
        self.nc = nc
        self.js = nc.jetstream()
        self.publisher = JetStreamPublisher(nc)

    def on_degradation(self, state: DegradationState) -> None:
        self.level = state.level
        self.sheddable = state.sheddable
        self.metrics.degradation_level.set(int(state.level))

    def ready(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # --- refusal steps (pure apart from the limiter's state) ---------------------------------

    def tenant_of(self, request: web.Request) -> str:
        if self.token_file is not None:
            self.tokens = self.token_file.current()
        try:
            return authenticate(request.headers, self.tokens)
        except Refused:
            address = getattr(request, "remote", None) or "unknown"
            wait = self.unauthenticated.take(address, self.clock())
            if wait > 0:
                self.metrics.rejected("none", "unauthenticated")
                raise Refused(
                    429,
                    "rate_limited",
                    "too many requests without a valid token from this address",
                    {"Retry-After": str(max(1, int(wait + 0.999)))},
                ) from None
            raise

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
        stream_limit = self.settings.max_msg_size
        for message in messages:
            if utf8_length(message.text) > limit:
                raise Refused(413, "too_large", f"message {message.id}: text above {limit} bytes")
            if message.tenant is not None and message.tenant != tenant:
                raise Refused(
                    403, "wrong_tenant", f"message {message.id}: token is not for that tenant"
                )
            # Exact size only when the text could possibly reach the stream's limit.
            if stream_limit and len(message.text) * MAX_BYTES_PER_CHAR + 1024 > stream_limit:
                size = self._stored_size(tenant, message)
                if size > stream_limit:
                    raise Refused(
                        413,
                        "too_large",
                        f"message {message.id}: {size} bytes as stored, above the stream's "
                        f"limit of {stream_limit} (spec.stream.maxMsgSize)",
                    )

    def _stored_size(self, tenant: str, message: MessageIn) -> int:
        pipeline = self.settings.pipeline
        _, payload, headers = publication(
            pipeline.subject_prefix, pipeline.partitions, tenant, message, _ENQUEUED_AT_WIDTH
        )
        return stored_size(payload, headers)

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
            publication(prefix, partitions, tenant, message, now) for message in messages
        ]
        started = time.perf_counter()
        try:
            # Pipelined: send all, then wait for all acks (each is still confirmed).
            acks = await self.publisher.publish(publications)
        except (nats.errors.Error, TimeoutError) as err:
            self.log.warning("publish_failed", tenant=tenant, error=str(err) or repr(err))
            raise refusal_for(err) from err
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
