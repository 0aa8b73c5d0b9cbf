"""The operator's NATS edge for provisioning: connections, credentials, stream lifecycle
and publishing the degradation level. (Metrics reading lives with the autoscaler.)

Connections are pooled per (URL, credentials): 200 MessagingClusters on one NATS cost one
connection, not 200. Failures become domain errors (`NatsUnavailableError`,
`ProvisioningError`, `ImmutableStreamFieldError`, `InvalidSpecError`) that the handlers map
to kopf retries. Credentials are never logged or put in error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from nats.js import JetStreamContext

from surge_operator.api import SecretKeyRef
from surge_operator.errors import (
    CredentialsSecretMissingError,
    ImmutableStreamFieldError,
    InvalidSpecError,
    NatsUnavailableError,
    ProvisioningError,
    StreamSubjectsOverlapError,
)
from surge_operator.resources.jetstream import (
    PASSWORD_KEY,
    TOKEN_KEY,
    USER_KEY,
    credentials_kind,
)
from surge_workers import provision
from surge_workers.contract import (
    DEFAULT_SHEDDABLE,
    DEGRADATION_KEY,
    DegradationLevel,
    DegradationState,
    Priority,
    degradation_bucket,
    encode_degradation,
)
from surge_workers.errors import ConfigError, ImmutableFieldError, ProvisionError
from surge_workers.eta import Forecast
from surge_workers.forecast_kv import publish_forecast
from surge_workers.pipeline import PipelineConfig


def redact_url(url: str) -> str:
    """`nats://user:secret@host:4222,...` -> `nats://***@host:4222,...`: URLs reach
    conditions, Events and logs, credentials must not."""
    out = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        if sep and "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        out.append(f"{scheme}{sep}{rest}")
    return ",".join(out)


def _unavailable(url: str, exc: BaseException, verb: str = "") -> NatsUnavailableError:
    where = f"{verb} NATS at {redact_url(url)}".strip()
    return NatsUnavailableError(f"{where}: {type(exc).__name__} {exc}".strip())


@dataclass(frozen=True)
class NatsAuth:
    """Credentials for one connection. `repr` hides every secret."""

    creds: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    #: PEM of the CA to trust (`nats.tls`: the managed cluster's CA or `nats.caSecret`);
    #: None with TLS means the system's roots (a `tls://` URL)
    ca_pem: str | None = field(default=None, repr=False)

    def digest(self) -> str:
        parts = (self.creds, self.user, self.password, self.token, self.ca_pem)
        blob = "\0".join(x or "" for x in parts)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.creds:
            options["user_credentials"] = RawCredentials(self.creds)
        if self.user:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.token:
            options["token"] = self.token
        if self.ca_pem:
            options["tls"] = ssl.create_default_context(cadata=self.ca_pem)
        return options


def auth_from_secret(ref: SecretKeyRef, data: Mapping[str, bytes] | None) -> NatsAuth:
    """Pure: a Secret's data + the spec's reference -> credentials, or a clear error."""
    if data is None:
        raise CredentialsSecretMissingError(f"Secret {ref.name} does not exist")
    kind = credentials_kind(ref)
    needed = {"token": [TOKEN_KEY], "userpass": [USER_KEY, PASSWORD_KEY]}.get(kind, [ref.key])
    missing = [k for k in needed if k not in data]
    if missing:
        raise CredentialsSecretMissingError(f"Secret {ref.name} has no key {', '.join(missing)}")
    if kind == "token":
        return NatsAuth(token=data[TOKEN_KEY].decode())
    if kind == "userpass":
        return NatsAuth(user=data[USER_KEY].decode(), password=data[PASSWORD_KEY].decode())
    return NatsAuth(creds=data[ref.key].decode())


class JetStreamOps(Protocol):
    """What handlers need from NATS; faked in unit tests."""

    async def provision(self, url: str, auth: NatsAuth, config: PipelineConfig) -> str: ...

    async def delete(self, url: str, auth: NatsAuth, config: PipelineConfig) -> tuple[str, ...]: ...

    async def publish_level(
        self,
        url: str,
        auth: NatsAuth,
        stream: str,
        level: int,
        reason: str,
        at: float,
        *,
        sheddable: Collection[str] | None = None,
    ) -> None:
        """Publish the level with the classes it may shed (`spec.sheddable()`; None: the
        contract's default, bulk only)."""
        ...

    async def publish_forecast(
        self, url: str, auth: NatsAuth, stream: str, forecast: Forecast
    ) -> None:
        """Publish the tick's expected wait per priority beside the level."""
        ...

    async def jetstream(self, url: str, auth: NatsAuth) -> JetStreamContext: ...


async def _quiet(_: Exception) -> None:
    """nats-py logs every failed (re)connect attempt; the pool reports failures itself."""


class NatsPool:
    """Shared NATS connections keyed by (url, credentials digest)."""

    def __init__(self, connect_timeout: float = 2.0) -> None:
        self._timeout = connect_timeout
        self._clients: dict[tuple[str, str], NatsClient] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def client(self, url: str, auth: NatsAuth) -> NatsClient:
        key = (url, auth.digest())
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is not None and not client.is_closed:
                return client
            client = NatsClient()
            try:
                # Reconnect forever once connected (NATS restarts must not need us), but
                # bound the first connect so the handler can report it and back off.
                await asyncio.wait_for(
                    client.connect(
                        servers=[u.strip() for u in url.split(",") if u.strip()],
                        connect_timeout=max(1, math.ceil(self._timeout)),
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=1,
                        error_cb=_quiet,
                        name="surge-operator",
                        **auth.connect_options(),
                    ),
                    timeout=self._timeout * 2 + 1,
                )
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                with contextlib.suppress(Exception):
                    await client.close()
                raise _unavailable(url, exc, "cannot connect to") from None
            self._clients[key] = client
            return client

    async def close(self) -> None:
        for client in self._clients.values():
            if not client.is_closed:
                await client.close()
        self._clients.clear()


class NatsJetStreamOps:
    """JetStreamOps over pooled connections and surge_workers.provision."""

    def __init__(self, pool: NatsPool, request_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = request_timeout

    async def jetstream(self, url: str, auth: NatsAuth) -> JetStreamContext:
        client = await self._pool.client(url, auth)
        if not client.is_connected:
            raise NatsUnavailableError(f"NATS at {redact_url(url)} is reconnecting")
        return client.jetstream(timeout=self._timeout)

    async def provision(self, url: str, auth: NatsAuth, config: PipelineConfig) -> str:
        js = await self.jetstream(url, auth)
        try:
            result = await provision.provision_pipeline(js, config)
        except ImmutableFieldError as exc:
            raise ImmutableStreamFieldError(str(exc)) from None
        except ConfigError as exc:
            raise InvalidSpecError(str(exc)) from None
        except ProvisionError as exc:
            if "subjects overlap" in str(exc):
                raise StreamSubjectsOverlapError(
                    f"{exc}: another stream on this NATS already uses subjects "
                    f"{config.subject_prefix}.>; give each MessagingCluster its own "
                    "spec.stream.subjectPrefix"
                ) from None
            raise ProvisioningError(str(exc)) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(url, exc) from None
        return result.summary() if result.changed else ""

    async def delete(self, url: str, auth: NatsAuth, config: PipelineConfig) -> tuple[str, ...]:
        js = await self.jetstream(url, auth)
        try:
            return await provision.delete_pipeline(js, config)
        except (TimeoutError, nats.errors.Error) as exc:
            raise _unavailable(url, exc) from None

    async def publish_level(
        self,
        url: str,
        auth: NatsAuth,
        stream: str,
        level: int,
        reason: str,
        at: float,
        *,
        sheddable: Collection[str] | None = None,
    ) -> None:
        js = await self.jetstream(url, auth)
        state = DegradationState(
            level=DegradationLevel(level),
            reason=reason,
            at=at,
            sheddable=(
                DEFAULT_SHEDDABLE
                if sheddable is None
                else frozenset(Priority(name) for name in sheddable)
            ),
        )
        try:
            kv = await js.key_value(degradation_bucket(stream))
            await kv.put(DEGRADATION_KEY, encode_degradation(state))
        except nats.js.errors.BucketNotFoundError:
            raise ProvisioningError(f"KV bucket {degradation_bucket(stream)} is missing") from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailableError(f"NATS: {type(exc).__name__}: {exc}") from None

    async def publish_forecast(
        self, url: str, auth: NatsAuth, stream: str, forecast: Forecast
    ) -> None:
        js = await self.jetstream(url, auth)
        try:
            await publish_forecast(js, stream, forecast)
        except nats.js.errors.BucketNotFoundError:
            raise ProvisioningError(f"KV bucket {degradation_bucket(stream)} is missing") from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailableError(f"NATS: {type(exc).__name__}: {exc}") from None
