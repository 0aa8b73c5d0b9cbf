"""The gateway's own JetStream publisher: pipelined publishes, one wait per batch."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

import nats.js.api
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

PUBLISH_TIMEOUT = 5.0

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
