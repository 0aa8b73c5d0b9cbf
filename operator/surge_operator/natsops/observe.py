"""I/O: ask every server of a region, through the system account, what it runs and how
its JetStream assets are doing; and the two commands `act` sends the same way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from surge_operator.natsops.plan import ServerView
from surge_operator.natsops.views import JetStreamView, jetstream_from_jsz, servers_from_varz

JSZ_OPTIONS = {"accounts": True, "streams": True}


async def ping(
    nc: Client, subject: str, payload: Mapping[str, Any] | None = None, *, wait: float = 0.5
) -> list[dict[str, Any]]:
    """Every server's answer to a `$SYS.REQ.SERVER.PING.*` request within `wait`."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    answers: list[dict[str, Any]] = []
    try:
        await nc.publish(subject, json.dumps(payload or {}).encode(), reply=inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except TimeoutError:
                break
            except Exception:  # nats-py raises its own TimeoutError subclass
                break
            answers.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    return answers


async def servers(nc: Client, *, wait: float = 0.5) -> list[ServerView]:
    return servers_from_varz(await ping(nc, "$SYS.REQ.SERVER.PING.VARZ", wait=wait))


async def jetstream(nc: Client, *, wait: float = 0.5) -> JetStreamView:
    return jetstream_from_jsz(await ping(nc, "$SYS.REQ.SERVER.PING.JSZ", JSZ_OPTIONS, wait=wait))


async def reload(nc: Client, server_id: str, *, within: float = 5.0) -> str | None:
    """Ask one server to reload its configuration; None on success, else its error."""
    msg = await nc.request(f"$SYS.REQ.SERVER.{server_id}.RELOAD", b"", timeout=within)
    error = json.loads(msg.data).get("error")
    return None if not error else str(error.get("description") or error)


async def remove_peer(nc: Client, server_name: str, *, within: float = 5.0) -> str | None:
    """Remove a server that is gone for good from the JetStream meta group."""
    body = json.dumps({"peer": server_name}).encode()
    msg = await nc.request("$JS.API.SERVER.REMOVE", body, timeout=within)
    error = json.loads(msg.data).get("error")
    return None if not error else str(error.get("description") or error)
