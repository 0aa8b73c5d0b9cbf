"""The system-account side of operating managed NATS, behind a Protocol so the handler is
unit-tested with a fake and runs unchanged against real servers."""

from __future__ import annotations

from typing import Protocol

from surge_operator.jetstream import NatsAuth, NatsPool
from surge_operator.natsops import observe
from surge_operator.natsops.plan import ServerView
from surge_operator.natsops.views import JetStreamView


class NatsAdmin(Protocol):
    async def servers(self, url: str, auth: NatsAuth) -> list[ServerView]: ...

    async def jetstream(self, url: str, auth: NatsAuth) -> JetStreamView: ...

    async def reload(self, url: str, auth: NatsAuth, server_id: str) -> str | None: ...

    async def remove_peer(self, url: str, auth: NatsAuth, server_name: str) -> str | None: ...


class PooledNatsAdmin:
    """NatsAdmin over the operator's pooled connections (system-account user)."""

    def __init__(self, pool: NatsPool) -> None:
        self._pool = pool

    async def servers(self, url: str, auth: NatsAuth) -> list[ServerView]:
        return await observe.servers(await self._pool.client(url, auth))

    async def jetstream(self, url: str, auth: NatsAuth) -> JetStreamView:
        return await observe.jetstream(await self._pool.client(url, auth))

    async def reload(self, url: str, auth: NatsAuth, server_id: str) -> str | None:
        return await observe.reload(await self._pool.client(url, auth), server_id)

    async def remove_peer(self, url: str, auth: NatsAuth, server_name: str) -> str | None:
        return await observe.remove_peer(await self._pool.client(url, auth), server_name)
