"""How to reach one region's NATS: the endpoint value and short-lived, fail-fast
connections (the only place failover opens NATS connections)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from surge_operator.api import Region
from surge_operator.errors import FailoverError, NatsUnavailableError


@dataclass(frozen=True, slots=True)
class RegionEndpoint:
    """How to reach one region's NATS. `connect_options` are passed to `nats.connect`
    (e.g. ``NatsAuth.connect_options()``: user_credentials / user+password / token) and
    never logged. `domain` is the region's JetStream domain (default: the region name)."""

    name: str
    url: str
    domain: str | None = None
    connect_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: replicas of the streams this region holds, mirrors included (a standby may run fewer
    #: servers than the primary: one server cannot hold an R3 mirror); None: as the origin
    stream_replicas: int | None = None

    @classmethod
    def from_region(
        cls,
        region: Region,
        connect_options: Mapping[str, Any] | None = None,
        *,
        domain: str | None = None,
        url: str | None = None,
        stream_replicas: int | None = None,
    ) -> RegionEndpoint:
        """From the spec's Region; credentials (and a TLS context when
        `region.nats.tls`) come in `connect_options`, resolved by the caller. `url`
        overrides the spec's (a managed region's URL is derived from the cluster)."""
        resolved = url or region.nats.url
        if resolved is None:
            raise ValueError(f"region {region.name}: no NATS URL (managed: pass url=)")
        return cls(
            name=region.name,
            url=resolved,
            domain=domain or region.jetstream_domain,
            connect_options=dict(connect_options or {}),
            stream_replicas=stream_replicas,
        )

    @property
    def js_domain(self) -> str:
        return self.domain or self.name

    @property
    def api_prefix(self) -> str:
        """Where other regions reach this region's JetStream API over the leafnode."""
        return f"$JS.{self.js_domain}.API"


@contextlib.asynccontextmanager
async def connect(endpoint: RegionEndpoint, *, request_timeout: float) -> AsyncIterator[NatsClient]:
    """A short-lived connection that fails fast: no reconnects, bounded connect time.

    Fresh connections per probe are deliberate: a pooled connection that is reconnecting
    says nothing about whether the region accepts new clients right now.
    """

    errors: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        """nats-py logs every failed connect; keep the cause and report it ourselves."""
        errors.append(exc)

    client = NatsClient()
    try:
        await asyncio.wait_for(
            client.connect(
                servers=[u.strip() for u in endpoint.url.split(",") if u.strip()],
                connect_timeout=max(1, math.ceil(request_timeout)),
                allow_reconnect=False,
                # nats-py treats 0 as "retry forever" during the initial connect; one
                # immediate retry per server, then NoServersError, keeps a probe fast.
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=quiet,
                name=f"surge-failover-{endpoint.name}",
                **dict(endpoint.connect_options),
            ),
            timeout=request_timeout + 0.5,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        with contextlib.suppress(Exception):
            await client.close()
        # NoServersError hides why each attempt failed; the callback saw the real cause.
        cause = errors[-1] if errors and isinstance(exc, nats.errors.NoServersError) else exc
        raise NatsUnavailableError(
            f"cannot connect to region {endpoint.name} at {endpoint.url}: {describe_exc(cause)}"
        ) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()


@contextlib.contextmanager
def failing_as(
    error: type[FailoverError],
    doing: str,
    *,
    unreachable: type[FailoverError] | None = None,
    also: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Turn what a region's NATS can throw into the caller's `FailoverError`: a region
    that cannot be reached keeps `connect`'s message (as `unreachable`, when that is a
    different condition for the caller), anything else is "<doing> failed: <cause>".
    `from None`: the controller reports the message; a NATS traceback adds nothing."""
    caught: tuple[type[Exception], ...] = (TimeoutError, nats.errors.Error, *also)
    try:
        yield
    except NatsUnavailableError as exc:
        raise (unreachable or error)(exc.message) from None
    except caught as exc:
        raise error(f"{doing} failed: {describe_exc(exc)}") from None


def describe_exc(exc: BaseException) -> str:
    if isinstance(exc, nats.js.errors.APIError):
        return f"{exc.description or type(exc).__name__} (code {exc.err_code})"
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


async def stream_info(js: JetStreamContext, stream: str) -> StreamInfo | None:
    try:
        return await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return None
