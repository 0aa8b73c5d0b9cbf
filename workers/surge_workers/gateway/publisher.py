"""The gateway's own JetStream publisher: pipelined publishes, one wait per batch."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import nats.js.api
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

PUBLISH_TIMEOUT = 5.0
#: how often a batch waiting for acks checks whether the connection was re-established
RECONNECT_CHECK = 0.05
#: a batch with no new ack for this long is published again (dedup makes that safe)
RESEND_AFTER = 1.0

Ack = dict[str, Any]  # a JetStream publish ack: {"stream": ..., "seq": ..., "duplicate"?: true}
Publication = tuple[str, bytes, dict[str, str]]  # subject, payload, headers
Frame = tuple[str, str, bytes, dict[str, str]]  # subject, reply, payload, headers


# nats-server's PubAck as it writes it (Go's encoding/json, fields in struct order, the
# empty ones omitted): parsed without the json module, whose decoder cost the gateway about
# as much per message as building the frame. Anything else goes through json.loads.
_PUB_ACK = re.compile(rb'\{"stream":"([A-Za-z0-9_-]+)","seq":([0-9]{1,19})(,"duplicate":true)?\}')


def parse_ack(data: bytes) -> Any:
    """``json.loads(data)`` (None when it is not JSON), with a fast path for a plain ack."""
    match = _PUB_ACK.fullmatch(data)
    if match is not None:
        stream, seq, duplicate = match.groups()
        ack: Ack = {"stream": stream.decode(), "seq": int(seq)}
        if duplicate:
            ack["duplicate"] = True
        return ack
    try:
        return json.loads(data)
    except ValueError:
        return None


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
        #: messages published again (their acks were lost or they were dropped)
        self.resent = 0
        self._newest_acked = -1  # the highest batch number any ack came back for
        self._last_ack_at = 0.0

    async def publish(self, publications: Sequence[Publication]) -> list[Ack]:
        """The acks, in order; raises a nats error or TimeoutError when any is missing.

        A reconnect while acks are outstanding loses them (the reply went to the old
        connection), and a publish that reaches a stream leader just as it hands over
        (lame duck, step-down) is dropped without an answer. So every message still
        without its ack is published again, with the same reply subject and Nats-Msg-Id
        (JetStream stores it once, within the duplicate window, and acks it again):
        at once after a reconnect; and ``RESEND_AFTER`` seconds after it was sent when
        either no ack at all came back meanwhile or a batch sent after it was acked
        (one connection, one stream leader: acks come back in order, so it was dropped).
        Waiting out the timeout instead made a rolling restart look like seconds of
        unavailability.
        """
        if not publications:
            return []
        if not self._prefix:
            await self._subscribe()
        count = len(publications)
        while self._in_flight and self._in_flight + count > self.max_in_flight:
            self._room.clear()
            await self._room.wait()
        self._in_flight += count
        number = next(self._ids)
        batch_id = str(number)
        batch = self._batches[batch_id] = _PendingBatch(count)
        reply = f"{self._prefix}{batch_id}."
        frames = [
            (subject, reply + str(index), payload, headers)
            for index, (subject, payload, headers) in enumerate(publications)
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            reconnects, sent_at = self._reconnects(), loop.time()
            await self._send(frames)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"{batch.missing} of {count} publishes not acknowledged")
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(
                        asyncio.shield(batch.done), min(left, RECONNECT_CHECK)
                    )
                if not self.nc.is_connected:
                    continue  # nats-py buffers and replays; look again once connected
                now = loop.time()
                stalled = now - sent_at > RESEND_AFTER and (
                    self._newest_acked > number or now - self._last_ack_at > RESEND_AFTER
                )
                if self._reconnects() != reconnects or stalled:
                    reconnects, sent_at = self._reconnects(), loop.time()
                    missing = [f for f, ack in zip(frames, batch.acks, strict=True) if ack is None]
                    self.resent += len(missing)
                    await self._send(missing)
        finally:
            del self._batches[batch_id]
            self._in_flight -= count
            self._room.set()
            if batch.done.done() and not batch.done.cancelled():
                batch.done.exception()  # retrieved: an error reply during a failed send
            else:
                batch.done.cancel()

    def _reconnects(self) -> int:
        return int(self.nc.stats.get("reconnects", 0))

    async def _send(self, frames: Sequence[Frame]) -> None:
        publish_batch = getattr(self.nc, "publish_batch", None)
        if publish_batch is not None:  # SurgeClient: one flush, cheaper frames
            await publish_batch(frames)
            return
        publish = self.nc.publish
        for subject, reply, payload, headers in frames:
            await publish(subject, payload, reply=reply, headers=headers)

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
        ack = parse_ack(msg.data)
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
        self._last_ack_at = asyncio.get_running_loop().time()
        self._newest_acked = max(self._newest_acked, int(batch_id))
        if not batch.missing:
            batch.done.set_result(batch.acks)  # type: ignore[arg-type]  # all filled
