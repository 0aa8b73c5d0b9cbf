"""The gateway's pipelined JetStream publisher against a real nats-server: every message
gets its own ack (in order, with dedup), any error reply fails the whole batch at once
(not after the timeout), a missing ack times out, and in-flight messages stay bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import nats.js.errors
import pytest
from tests.integration.dataplane_support import connect, provisioned, unique_pipeline

from surge_workers.contract import Header, Priority, message_subject
from surge_workers.gateway import JetStreamPublisher, Publication
from surge_workers.logs import get_logger
from surge_workers.natsserver import NatsServer
from surge_workers.provision import provision_pipeline
from surge_workers.runtime import connect as runtime_connect
from surge_workers.settings import NatsSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def publications(
    prefix: str, ids: list[str], payload: bytes = b'{"text": "hi"}'
) -> list[Publication]:
    return [
        (
            message_subject(prefix, Priority.NORMAL, f"conv-{i}", 8, tenant=""),
            payload,
            {Header.MSG_ID: msg_id, Header.CONVERSATION: f"conv-{i}"},
        )
        for i, msg_id in enumerate(ids)
    ]


async def test_every_message_is_acked_in_order_and_a_retry_is_deduplicated(
    nats_url: str,
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    publisher = JetStreamPublisher(nc)
    try:
        first = await publisher.publish(publications(config.subject_prefix, ["a", "b", "c"]))
        retry = await publisher.publish(publications(config.subject_prefix, ["a", "b", "d"]))
        stored = (await js.stream_info(config.stream)).state.messages
    finally:
        await nc.close()

    assert [(a["stream"], a["seq"], a.get("duplicate", False)) for a in first] == [
        (config.stream, 1, False),
        (config.stream, 2, False),
        (config.stream, 3, False),
    ]
    assert [(a["seq"], a.get("duplicate", False)) for a in retry] == [
        (1, True),
        (2, True),
        (4, False),
    ]
    assert stored == 4
    assert publisher._in_flight == 0
    assert not publisher._batches


async def test_no_stream_for_the_subject_fails_the_batch_at_once(nats_url: str) -> None:
    nc = await connect(nats_url)
    publisher = JetStreamPublisher(nc, timeout=5.0)
    started = time.monotonic()
    try:
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await publisher.publish(publications("nostream", ["a", "b"]))
    finally:
        await nc.close()
    assert time.monotonic() - started < 2.0


async def test_a_jetstream_error_reply_fails_the_batch_at_once(nats_url: str) -> None:
    config = unique_pipeline(max_msg_size=1024)
    nc, _ = await provisioned(nats_url, config)
    publisher = JetStreamPublisher(nc, timeout=5.0)
    ok, too_big = b'{"text": "hi"}', b'{"text": "' + b"x" * 2048 + b'"}'
    batch = publications(config.subject_prefix, ["a", "b"])
    batch[1] = (batch[1][0], too_big, batch[1][2])
    started = time.monotonic()
    try:
        with pytest.raises(nats.js.errors.APIError) as caught:
            await publisher.publish(batch)
        after = await publisher.publish(publications(config.subject_prefix, ["c"], ok))
    finally:
        await nc.close()
    assert time.monotonic() - started < 2.0
    assert caught.value.code == 400
    assert after[0]["seq"] == 2  # the publisher still works; "a" was stored before the error


async def test_a_missing_ack_times_out_and_a_late_one_is_ignored(nats_url: str) -> None:
    nc = await connect(nats_url)
    silent = await nc.subscribe("silent.>")  # a responder that never answers: no 503 either
    publisher = JetStreamPublisher(nc, timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            await publisher.publish([("silent.x", b"{}", {Header.MSG_ID: "a"})])
        request = await silent.next_msg(timeout=1)
        await nc.publish(request.reply, b'{"stream": "S", "seq": 1}')  # too late
        await nc.flush()
        await asyncio.sleep(0.1)
    finally:
        await nc.close()
    assert publisher._in_flight == 0
    assert not publisher._batches


async def test_in_flight_messages_are_bounded(nats_url: str) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_url, config)
    publisher = JetStreamPublisher(nc, max_in_flight=3)
    in_flight: set[int] = set()
    original = nc.publish

    async def watching_publish(*args: object, **kwargs: object) -> None:
        in_flight.add(publisher._in_flight)
        await original(*args, **kwargs)  # type: ignore[arg-type]

    nc.publish = watching_publish  # type: ignore[method-assign]
    prefix = config.subject_prefix
    try:
        results = await asyncio.gather(
            *(publisher.publish(publications(prefix, [f"{n}-a", f"{n}-b"])) for n in range(4)),
            publisher.publish(publications(prefix, [f"big-{i}" for i in range(5)])),
        )
    finally:
        await nc.close()
    seqs = sorted(ack["seq"] for acks in results for ack in acks)
    assert seqs == list(range(1, 14))
    # Two batches of 2 never share the 3 slots; the batch of 5 goes alone.
    assert in_flight == {2, 5}
    assert publisher._in_flight == 0


async def test_messages_whose_acks_a_reconnect_lost_are_published_again_and_stored_once(
    tmp_path: Path,
) -> None:
    """The server stops answering (SIGSTOP) with a whole batch on the wire, dies (kill -9)
    and comes back on the same port and store: nothing of the batch reached the stream, so
    only the publisher's resend after the reconnect can store it; every message ends up
    stored exactly once and acknowledged."""
    server = NatsServer(store_dir=tmp_path / "store").start()
    config = unique_pipeline()
    settings = NatsSettings(servers=(server.url,))
    nc = await runtime_connect(settings, "test-gateway", get_logger("test"))
    try:
        await provision_pipeline(nc.jetstream(), config)
        publisher = JetStreamPublisher(nc, timeout=60.0)
        ids = [f"r{i}" for i in range(300)]
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        sending = asyncio.create_task(publisher.publish(publications(config.subject_prefix, ids)))
        await asyncio.sleep(0.5)  # the batch is written to the socket of a server that sleeps
        assert not sending.done()
        server.kill()
        await asyncio.to_thread(server.start, 20)
        acks = await asyncio.wait_for(sending, 60)
        stored = (await nc.jetstream().stream_info(config.stream)).state.messages
    finally:
        await nc.close()
        server.cleanup()
    assert len(acks) == 300
    assert publisher.resent >= 300
    assert stored == 300, "published again with the same Nats-Msg-Id: stored once"
