"""HTTP clients for the gateway: closed-loop throughput helpers for `surge bench`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import aiohttp


def _message(i: int, run: str, tenant: str, text: str, priority: str = "normal") -> dict[str, str]:
    return {
        "id": f"{run}-{i}",
        "conversation_id": f"c{i % 997}",
        "tenant": tenant,
        "priority": priority,
        "text": text,
        "language": "en",
    }


def _text(size: int) -> str:
    # ~size bytes of stored payload: {"text": ...} adds a dozen bytes of JSON around it.
    return "x" * max(1, size - 30)


def batch_bodies(tenant: str, count: int, size: int, *, batch: int) -> list[bytes]:
    """The request bodies of ``count`` messages in batches of ``batch`` (encoded up front,
    like a benchmark's payload: not part of what is measured)."""
    run = uuid.uuid4().hex[:8]
    text = _text(size)
    return [
        json.dumps(
            {"messages": [_message(i, run, tenant, text) for i in range(s, min(s + batch, count))]}
        ).encode()
        for s in range(0, count, batch)
    ]


async def post_batches(
    base: str, token: str, tenant: str, count: int, size: int, *, batch: int, parallel: int
) -> float:
    """Messages/s for ``count`` messages in batches, ``parallel`` requests in flight."""
    bodies = batch_bodies(tenant, count, size, batch=batch)
    return await post_bodies(base, token, bodies, count, parallel=parallel)


async def post_bodies(
    base: str, token: str, bodies: list[bytes], count: int, *, parallel: int
) -> float:
    """Messages/s for batch ``bodies`` holding ``count`` messages, ``parallel`` in flight."""
    return await _post_all(f"{base}/v1/messages/batch", token, iter(bodies), count, parallel)


async def post_singles(
    base: str, token: str, tenant: str, count: int, size: int, parallel: int
) -> float:
    """Messages/s for ``count`` single-message requests, ``parallel`` in flight."""
    run = uuid.uuid4().hex[:8]
    text = _text(size)
    # Encoded as they are sent (inside the timing), one request each.
    bodies = (json.dumps(_message(i, run, tenant, text)).encode() for i in range(count))
    return await _post_all(f"{base}/v1/messages", token, bodies, count, parallel)


async def _post_all(
    url: str, token: str, bodies: Iterator[bytes], count: int, parallel: int
) -> float:
    """POST every body, ``parallel`` at a time, each answered 202; ``count`` messages/s.
    The senders share one iterator: each takes the next body when its last one is done."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def sender(session: aiohttp.ClientSession) -> None:
        for body in bodies:
            async with session.post(url, data=body) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"gateway answered {resp.status}: {await resp.text()}")
                await resp.read()

    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(parallel)))
        return count / (time.perf_counter() - started)
