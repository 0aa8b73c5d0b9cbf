"""HTTP clients for the gateway: closed-loop throughput helpers for `surge bench`."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

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


async def post_batches(
    base: str, token: str, tenant: str, count: int, size: int, *, batch: int, parallel: int
) -> float:
    """Messages/s for ``count`` messages in batches, ``parallel`` requests in flight."""
    run = uuid.uuid4().hex[:8]
    text = _text(size)
    bodies = [
        json.dumps(
            {"messages": [_message(i, run, tenant, text) for i in range(s, min(s + batch, count))]}
        ).encode()
        for s in range(0, count, batch)
    ]
    queue = iter(bodies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def sender(session: aiohttp.ClientSession) -> None:
        for body in queue:
            async with session.post(f"{base}/v1/messages/batch", data=body) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"gateway answered {resp.status}: {await resp.text()}")
                await resp.read()

    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(parallel)))
        return count / (time.perf_counter() - started)


async def post_singles(
    base: str, token: str, tenant: str, count: int, size: int, parallel: int
) -> float:
    run = uuid.uuid4().hex[:8]
    text = _text(size)
    counter = itertools.count()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def sender(session: aiohttp.ClientSession) -> None:
        while (i := next(counter)) < count:
            body = json.dumps(_message(i, run, tenant, text)).encode()
            async with session.post(f"{base}/v1/messages", data=body) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"gateway answered {resp.status}: {await resp.text()}")
                await resp.read()

    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(parallel)))
        return count / (time.perf_counter() - started)
