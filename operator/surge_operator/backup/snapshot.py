"""JetStream's snapshot and restore protocol, over a nats-py connection.

Snapshot: request ``<api>.STREAM.SNAPSHOT.<stream>`` with a deliver subject; the server
answers with the stream's config and state, then sends the snapshot (an s2-compressed tar
of the stream's blocks and consumer state) in chunks to the deliver subject. Each chunk
carries a reply subject that must be answered for the server's flow-control window to
move. An empty message with status 204 ends it; any other status is an error.

Restore: request ``<api>.STREAM.RESTORE.<stream>`` with config and state; the server
answers with a subject that takes the chunks as requests (each is acknowledged) and an
empty request to finish, whose answer is the restored stream's info.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from surge_operator.errors import SnapshotError

DEFAULT_API_PREFIX = "$JS.API"
CHUNK_SIZE = 128 * 1024
#: the server sends nothing for this long mid-snapshot only when something is wrong
CHUNK_TIMEOUT = 30.0


@dataclass(frozen=True)
class SnapshotInfo:
    stream: str
    config: dict[str, Any]
    state: dict[str, Any]
    bytes: int
    sha256: str


def _api_error(payload: dict[str, Any], what: str) -> SnapshotError | None:
    err = payload.get("error")
    if not err:
        return None
    return SnapshotError(f"{what}: {err.get('description', err)} (code {err.get('code')})")


async def _request(nc: Client, subject: str, body: bytes, wait: float, what: str) -> Msg:
    try:
        return await nc.request(subject, body, timeout=wait)
    except TimeoutError as exc:  # nats.errors.TimeoutError subclasses asyncio's
        raise SnapshotError(f"{what}: no answer within {wait:.0f} s") from exc
    except Exception as exc:
        raise SnapshotError(f"{what}: {exc.__class__.__name__}: {exc}") from exc


async def api_call(
    nc: Client, subject: str, body: dict[str, Any] | None, what: str, wait: float = 10.0
) -> dict[str, Any]:
    """One JetStream API request; its error answer raised as SnapshotError."""
    raw = json.dumps(body).encode() if body is not None else b""
    reply = await _request(nc, subject, raw, wait, what)
    answer: dict[str, Any] = json.loads(reply.data)
    if (error := _api_error(answer, what)) is not None:
        raise error
    return answer


async def snapshot_stream(
    nc: Client,
    stream: str,
    sink: Callable[[bytes], Awaitable[None]],
    *,
    api_prefix: str = DEFAULT_API_PREFIX,
    chunk_size: int = CHUNK_SIZE,
    chunk_timeout: float = CHUNK_TIMEOUT,
) -> SnapshotInfo:
    """Stream one stream's snapshot (with its consumers) into `sink`, chunk by chunk."""
    what = f"snapshot of stream {stream}"
    inbox = nc.new_inbox()
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_chunk(msg: Msg) -> None:
        await queue.put(msg)

    sub = await nc.subscribe(inbox, cb=on_chunk)
    digest = hashlib.sha256()
    size = 0
    try:
        body = json.dumps(
            {"deliver_subject": inbox, "chunk_size": chunk_size, "jsck": True}
        ).encode()
        subject = f"{api_prefix}.STREAM.SNAPSHOT.{stream}"
        reply = await _request(nc, subject, body, chunk_timeout, what)
        meta = json.loads(reply.data)
        if (error := _api_error(meta, what)) is not None:
            raise error
        while True:
            try:
                msg = await asyncio.wait_for(queue.get(), chunk_timeout)
            except TimeoutError as exc:
                raise SnapshotError(f"{what}: stalled after {size} bytes") from exc
            if not msg.data:
                status = (msg.headers or {}).get("Status", "")
                if status and status != "204":
                    description = (msg.headers or {}).get("Description", "")
                    raise SnapshotError(f"{what}: server ended with {status} {description}")
                break
            await sink(msg.data)
            digest.update(msg.data)
            size += len(msg.data)
            if msg.reply:
                await nc.publish(msg.reply, b"")
    finally:
        await sub.unsubscribe()
    return SnapshotInfo(stream, meta["config"], meta["state"], size, digest.hexdigest())


async def restore_stream(
    nc: Client,
    config: dict[str, Any],
    state: dict[str, Any],
    chunks: AsyncIterator[bytes],
    *,
    api_prefix: str = DEFAULT_API_PREFIX,
    chunk_timeout: float = CHUNK_TIMEOUT,
) -> dict[str, Any]:
    """Restore a stream (it must not exist) from its snapshot chunks; returns stream info."""
    stream = str(config["name"])
    what = f"restore of stream {stream}"
    body = json.dumps({"config": config, "state": state}).encode()
    reply = await _request(nc, f"{api_prefix}.STREAM.RESTORE.{stream}", body, chunk_timeout, what)
    answer = json.loads(reply.data)
    if (error := _api_error(answer, what)) is not None:
        raise error
    deliver = str(answer["deliver_subject"])
    async for chunk in chunks:
        ack = await _request(nc, deliver, chunk, chunk_timeout, what)
        if ack.data and (error := _api_error(json.loads(ack.data), what)) is not None:
            raise error
    # The final empty request makes the server rebuild the stream; large ones take a while.
    done = await _request(nc, deliver, b"", max(chunk_timeout, 120.0), what)
    info: dict[str, Any] = json.loads(done.data)
    if (error := _api_error(info, what)) is not None:
        raise error
    return info
