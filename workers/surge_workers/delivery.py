"""What a handler sees: a `Delivery` (one JetStream message) and a `HandlerContext`.

A handler is ``async def handle(delivery: Delivery, ctx: HandlerContext) -> None``,
referenced as ``module:function`` (SURGE_HANDLER). Returning means success (the worker
acks); raising :class:`~surge_workers.errors.RetryableError` (or any other exception)
means nak with backoff; :class:`~surge_workers.errors.PoisonError` dead-letters at once.
Handlers must be idempotent on ``delivery.scoped_id`` (the message id within its tenant):
delivery is at-least-once.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from surge_workers.contract import (
    DegradationLevel,
    Header,
    Priority,
    parse_enqueued_at,
    scoped_id,
)
from surge_workers.errors import ConfigError, PoisonError
from surge_workers.settings import WorkerSettings

_EMPTY: Mapping[str, str] = {}


class Delivery:
    """A thin view over a nats Msg; attributes are computed on demand (hot path)."""

    __slots__ = ("msg", "priority")

    def __init__(self, msg: Msg, priority: Priority) -> None:
        self.msg = msg
        self.priority = priority

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def headers(self) -> Mapping[str, str]:
        return self.msg.headers or _EMPTY

    @property
    def seq(self) -> int:
        return int(self.msg.metadata.sequence.stream)

    @property
    def num_delivered(self) -> int:
        return int(self.msg.metadata.num_delivered)

    @property
    def msg_id(self) -> str:
        """The client's message id (``Surge-Msg-Id``; ``Nats-Msg-Id`` from publishers that
        set only that); the stream sequence for publishers that set none."""
        headers = self.headers
        return headers.get(Header.CLIENT_ID) or headers.get(Header.MSG_ID) or f"seq-{self.seq}"

    @property
    def scoped_id(self) -> str:
        """The message id within its tenant: what idempotency is keyed on."""
        return scoped_id(self.tenant, self.msg_id)

    @property
    def conversation_id(self) -> str:
        return self.headers.get(Header.CONVERSATION, "")

    @property
    def tenant(self) -> str:
        return self.headers.get(Header.TENANT, "")

    @property
    def enqueued_at(self) -> float | None:
        return parse_enqueued_at(self.headers.get(Header.ENQUEUED_AT))

    def json(self) -> Any:
        """The JSON payload; malformed JSON can never succeed, so it is poison."""
        try:
            return json.loads(self.msg.data)
        except ValueError as err:
            raise PoisonError(f"payload is not JSON: {err}") from err


@dataclass
class HandlerContext:
    """Per-process resources for handlers (no globals): connections, settings, caches."""

    nc: Client
    js: JetStreamContext
    settings: WorkerSettings
    log: Any
    level: Callable[[], DegradationLevel]
    cache: dict[str, Any] = field(default_factory=dict)
    _kv: dict[str, KeyValue] = field(default_factory=dict)

    async def kv(self, bucket: str) -> KeyValue:
        handle = self._kv.get(bucket)
        if handle is None:
            handle = self._kv[bucket] = await self.js.key_value(bucket)
        return handle


Handler = Callable[[Delivery, HandlerContext], Awaitable[None]]


def load_handler(reference: str) -> Handler:
    """Resolve ``module:function`` (SURGE_HANDLER)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"handler {reference!r} must be module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"handler module {module_name!r} cannot be imported: {err}") from err
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"handler {reference!r}: {module_name} has no {attr!r}")
    if not callable(target):
        raise ConfigError(f"handler {reference!r} is not callable")
    handler: Handler = target
    return handler
