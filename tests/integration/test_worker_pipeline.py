"""The worker engine against a real nats-server: order, priority, retries, dead letters,
degradation. Workers run in-process here; crash and signal tests use real processes
(test_worker_process.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nats.js import JetStreamContext
from tests.integration.dataplane_support import (
    Recorder,
    backlog,
    dead_letters,
    provisioned,
    publish,
    running_worker,
    unique_pipeline,
    worker_settings,
)
from tests.integration.waits import wait_until

from surge_workers.contract import (
    PRIORITIES,
    DegradationLevel,
    Header,
    Priority,
    dead_letter_stream,
    message_subject,
)
from surge_workers.degradation import (
    DegradationWatcher,
    publish_degradation,
    read_degradation,
)
from surge_workers.delivery import Delivery, HandlerContext
from surge_workers.errors import RetryableError
from surge_workers.handlers import route_and_store
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.provision import provision_pipeline
from surge_workers.transcripts import read_transcript

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _settled_transcript(
    js: JetStreamContext, config: PipelineConfig, conversation: str, expected: int
) -> list[Any]:
    """read_transcript, again while it returns fewer entries than expected: nats-py's KV
    watcher can end before delivering the first entry (seen once in CI)."""
    deadline = time.monotonic() + 10
    while True:
        entries = await read_transcript(js, config.stream, "acme", conversation)
        if len(entries) >= expected or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.2)


async def test_conversation_order_survives_partitions_and_redeliveries(nats_url: str) -> None:
    config = unique_pipeline(partitions=4)
    nc, js = await provisioned(nats_url, config)
    conversations = [f"conv{i}" for i in range(12)]
    sent: dict[str, list[str]] = {c: [] for c in conversations}
    for n in range(8):  # interleaved across conversations, so across partitions
        for conv in conversations:
            msg_id = f"{conv}-m{n}"
            sent[conv].append(msg_id)
            await publish(js, config, msg_id=msg_id, conversation=conv, text=f"message {n}")
    failed_once: set[str] = set()

    async def flaky(delivery: Delivery, ctx: HandlerContext) -> None:
        # Every 3rd message fails once before its effect, every 5th once after it (the
        # effect happened but the ack never did): both must end up stored exactly once.
        index = int(delivery.msg_id.rsplit("m", 1)[1]) + int(delivery.conversation_id[4:])
        if delivery.msg_id not in failed_once and index % 3 == 0:
            failed_once.add(delivery.msg_id)
            raise RetryableError("downstream blip")
        await route_and_store(delivery, ctx)
        if delivery.msg_id not in failed_once and index % 5 == 0:
            failed_once.add(delivery.msg_id)
            raise RetryableError("lost the ack")

    recorder = Recorder(flaky)
    settings = worker_settings(config, concurrency=4)
    async with (
        running_worker(nats_url, settings, recorder),
        running_worker(nats_url, settings, recorder),
    ):
        await wait_until(lambda: _drained(js, config), within=30)
    transcripts = {c: await _settled_transcript(js, config, c, len(sent[c])) for c in conversations}
    await nc.close()

    assert any(n > 1 for _, _, n in recorder.calls), "the test must exercise redeliveries"
    for conv in conversations:
        stored = [entry.msg_id for entry in transcripts[conv]]
        assert stored == sent[conv], conv  # complete, once each, in publish order
        assert len({entry.team for entry in transcripts[conv]}) == 1  # sticky routing


async def _drained(js: object, config: object) -> bool:
    return await backlog(js, config) == 0  # type: ignore[arg-type]


async def test_critical_latency_stays_low_while_a_bulk_flood_is_queued(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    # Flood: 3000 bulk messages, far more than the worker can do during the test.
    futures = []
    for i in range(3000):
        conv = f"bulk{i % 50}"
        subject = message_subject(
            config.subject_prefix, Priority.BULK, conv, config.partitions, tenant=""
        )
        headers = {Header.MSG_ID: f"b{i}", Header.CONVERSATION: conv}
        futures.append(await js.publish_async(subject, b'{"text": "newsletter"}', headers=headers))
    await asyncio.gather(*futures)
    waits: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    bulk_done = 0

    async def handler(delivery: Delivery, ctx: HandlerContext) -> None:
        nonlocal bulk_done
        if delivery.priority is Priority.CRITICAL:
            waits[delivery.msg_id] = time.monotonic() - sent_at[delivery.msg_id]
        else:
            bulk_done += 1
        await asyncio.sleep(0.004)  # ~1000 msg/s with 4 lanes: the flood outlasts the test

    async with running_worker(nats_url, worker_settings(config, concurrency=4), handler):
        await asyncio.sleep(0.3)  # the flood is being worked on
        for i in range(20):
            msg_id = f"crit{i}"
            sent_at[msg_id] = time.monotonic()
            await publish(
                js, config, msg_id=msg_id, conversation=f"vip{i}", priority=Priority.CRITICAL
            )
            await asyncio.sleep(0.05)
        await wait_until(lambda: _true(len(waits) == 20), within=10)
        remaining_bulk = (await js.consumer_info(config.stream, "surge-bulk")).num_pending
    await nc.close()

    worst = max(waits.values())
    assert worst < 0.5, f"critical waited {worst:.3f}s behind bulk"
    assert bulk_done > 100  # bulk still progresses when capacity allows
    assert remaining_bulk is not None
    assert remaining_bulk > 500  # and the flood was really queued


async def _true(value: bool) -> bool:
    return value


async def test_poison_message_goes_to_dead_letter_with_reason(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    poison_seq = await publish(js, config, msg_id="bad", conversation="c1", data=b"{not json")
    await publish(js, config, msg_id="good", conversation="c1", text="fine")

    async with running_worker(nats_url, worker_settings(config), route_and_store):
        await wait_until(lambda: _drained(js, config), within=10)
    letters = await dead_letters(js, config)
    transcript = await read_transcript(js, config.stream, "acme", "c1")
    await nc.close()

    assert len(letters) == 1
    headers = letters[0]["headers"]
    assert isinstance(headers, dict)
    assert "not JSON" in headers["Surge-Dead-Reason"]
    assert headers["Surge-Dead-Seq"] == str(poison_seq)
    assert headers["Surge-Original-Msg-Id"] == "acme.bad"  # the tenant-scoped dedup id
    assert headers["Surge-Msg-Id"] == "bad"  # the client's own id travels with it
    assert letters[0]["data"] == b"{not json"
    assert [e.msg_id for e in transcript] == ["good"]


async def test_exhausted_retries_go_to_dead_letter_after_max_deliver(nats_url: str) -> None:
    policy = PriorityPolicy(ack_wait=5.0, max_deliver=3, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    await publish(js, config, msg_id="doomed", conversation="c1")
    attempts: list[int] = []

    async def always_down(delivery: Delivery, ctx: HandlerContext) -> None:
        attempts.append(delivery.num_delivered)
        raise RetryableError("crm is down")

    async with running_worker(nats_url, worker_settings(config), always_down):
        await wait_until(lambda: _drained(js, config), within=10)
    letters = await dead_letters(js, config)
    await nc.close()

    assert attempts == [1, 2, 3]
    (letter,) = letters
    headers = letter["headers"]
    assert isinstance(headers, dict)
    assert "MaxDeliver 3" in headers["Surge-Dead-Reason"]
    assert "crm is down" in headers["Surge-Dead-Reason"]
    assert headers["Surge-Dead-Deliveries"] == "3"


async def test_nats_unable_to_serve_the_handler_spends_no_delivery_budget(
    nats_url: str,
) -> None:
    """The handler writes to a stream that is not there yet (NATS answers: no responders),
    as it would during a leader election. Those deliveries are not the message's fault:
    with a budget of 2 it is still handled once the stream is back, never dead-lettered."""
    policy = PriorityPolicy(ack_wait=5.0, max_deliver=2, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    audit = f"AUDIT{config.stream}"
    await publish(js, config, msg_id="waits-out-the-outage", conversation="c1")
    attempts: list[int] = []

    async def audited(delivery: Delivery, ctx: HandlerContext) -> None:
        attempts.append(delivery.num_delivered)
        await ctx.js.publish(f"{audit.lower()}.seen", delivery.data, timeout=1)

    async with running_worker(nats_url, worker_settings(config), audited):
        await wait_until(lambda: _true(len(attempts) >= 2 * policy.max_deliver), within=20)
        await js.add_stream(name=audit, subjects=[f"{audit.lower()}.>"])
        await wait_until(lambda: _drained(js, config), within=20)
    letters = await dead_letters(js, config)
    stored = (await js.stream_info(audit)).state.messages
    await js.delete_stream(audit)
    await nc.close()

    assert letters == []
    assert stored == 1
    assert attempts == list(range(1, len(attempts) + 1))
    assert len(attempts) > 2 * policy.max_deliver


async def test_unanswered_messages_are_dead_lettered_on_the_delivery_past_their_budget(
    nats_url: str,
) -> None:
    policy = PriorityPolicy(ack_wait=0.3, max_deliver=2, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    seq = await publish(js, config, msg_id="crashes", conversation="c1")
    # A consumer that dies with the message each time: pulls it, never answers.
    crashing = await js.pull_subscribe_bind("surge-normal", stream=config.stream)
    for _ in range(2):
        (msg,) = await crashing.fetch(1, timeout=3)
        assert msg.metadata.sequence.stream == seq
    await crashing.unsubscribe()
    calls: list[int] = []

    async def handler(delivery: Delivery, ctx: HandlerContext) -> None:
        calls.append(delivery.num_delivered)

    # No advisory is involved: the third delivery itself is past the budget.
    async with running_worker(nats_url, worker_settings(config), handler):
        await wait_until(lambda: _dead_letter_count(js, config, 1), within=10)
        await wait_until(lambda: _drained(js, config), within=5)
    letters = await dead_letters(js, config)
    await nc.close()

    assert calls == []  # never run again once past its budget
    (letter,) = letters
    headers = letter["headers"]
    assert isinstance(headers, dict)
    assert "MaxDeliver 2 reached" in headers["Surge-Dead-Reason"]
    assert headers["Surge-Dead-Seq"] == str(seq)


async def test_a_failed_dead_letter_copy_on_the_last_delivery_strands_nothing(
    nats_url: str,
) -> None:
    policy = PriorityPolicy(ack_wait=5.0, max_deliver=2, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    # The dead-letter stream is gone: every copy fails until it is back.
    await js.delete_stream(dead_letter_stream(config.stream))
    seq = await publish(js, config, msg_id="doomed", conversation="c1")
    attempts: list[int] = []

    async def always_down(delivery: Delivery, ctx: HandlerContext) -> None:
        attempts.append(delivery.num_delivered)
        raise RetryableError("crm is down")

    async with running_worker(nats_url, worker_settings(config), always_down):
        await wait_until(lambda: _true(len(attempts) >= 2), within=10)
        # Its last allowed delivery failed and so did the copy: still in the stream,
        # delivered again (no server-side MaxDeliver), copy retried each time.
        await asyncio.sleep(1.0)
        stuck = await backlog(js, config)
        await provision_pipeline(js, config)  # the dead-letter stream is back
        await wait_until(lambda: _dead_letter_count(js, config, 1), within=15)
        await wait_until(lambda: _drained(js, config), within=5)
    letters = await dead_letters(js, config)
    await nc.close()

    assert attempts == [1, 2]  # the handler ran its budget, no more
    assert stuck == 1, "nothing may be terminated before its dead-letter copy is confirmed"
    (letter,) = letters
    headers = letter["headers"]
    assert isinstance(headers, dict)
    assert headers["Surge-Dead-Seq"] == str(seq)
    assert int(str(headers["Surge-Dead-Deliveries"])) > 2


async def test_a_hung_handler_is_cut_off_before_ack_wait_and_retried(nats_url: str) -> None:
    policy = PriorityPolicy(ack_wait=0.5, max_deliver=5, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    await publish(js, config, msg_id="slow-once", conversation="c1")
    attempts: list[int] = []

    async def hangs_once(delivery: Delivery, ctx: HandlerContext) -> None:
        attempts.append(delivery.num_delivered)
        if delivery.num_delivered == 1:
            await asyncio.sleep(30)

    async with running_worker(nats_url, worker_settings(config), hangs_once):
        await wait_until(lambda: _drained(js, config), within=10)
    await nc.close()

    assert attempts == [1, 2]


async def _dead_letter_count(js: object, config: object, expected: int) -> bool:
    try:
        return len(await dead_letters(js, config)) >= expected  # type: ignore[arg-type]
    except Exception:
        return False


async def test_worker_obeys_the_degradation_level(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    await publish_degradation(js, config.stream, DegradationLevel.CRITICAL_ONLY, "test")
    done: list[Priority] = []

    async def record(delivery: Delivery, ctx: HandlerContext) -> None:
        done.append(delivery.priority)

    settings = worker_settings(config)
    async with running_worker(nats_url, settings, record) as worker:
        watcher = DegradationWatcher(js, config.stream, worker.on_degradation)
        watcher.start()
        await wait_until(lambda: _true(worker.level is DegradationLevel.CRITICAL_ONLY), within=5)
        # Pull requests already waiting when the level rose end within pull_expires.
        await asyncio.sleep(settings.pull_expires + 0.2)
        for p in (Priority.BULK, Priority.NORMAL, Priority.CRITICAL):
            await publish(js, config, msg_id=f"m-{p.value}", conversation=p.value, priority=p)
        await wait_until(lambda: _true(len(done) == 2), within=5)
        await asyncio.sleep(0.5)
        held_back = list(done)
        await publish_degradation(js, config.stream, DegradationLevel.NORMAL, "recovered")
        await wait_until(lambda: _true(len(done) == 3), within=5)
        await watcher.stop()
    await nc.close()

    # Level 3: critical and normal (not sheddable) are served, bulk (sheddable) waits.
    assert sorted(held_back) == sorted([Priority.CRITICAL, Priority.NORMAL])
    assert sorted(done) == sorted(PRIORITIES)


async def test_level_three_drains_a_normal_backlog_with_critical_first(nats_url: str) -> None:
    """The observed failure: at level 3 workers left a normal backlog untouched although
    they were idle. Now normal is drained within its share (a quarter of the handler
    slots), while critical keeps the rest and never waits behind it."""
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    await publish_degradation(js, config.stream, DegradationLevel.CRITICAL_ONLY, "test")
    running = {Priority.CRITICAL: 0, Priority.NORMAL: 0}
    most_normal = 0
    waits: dict[str, float] = {}
    sent_at: dict[str, float] = {}

    async def handler(delivery: Delivery, ctx: HandlerContext) -> None:
        nonlocal most_normal
        if delivery.priority is Priority.CRITICAL:
            waits[delivery.msg_id] = time.monotonic() - sent_at[delivery.msg_id]
        running[delivery.priority] += 1
        most_normal = max(most_normal, running[Priority.NORMAL])
        try:
            await asyncio.sleep(0.01)
        finally:
            running[delivery.priority] -= 1

    settings = worker_settings(config, concurrency=4)
    async with running_worker(nats_url, settings, handler) as worker:
        worker.on_degradation(await read_degradation(js, config.stream))
        assert worker.level is DegradationLevel.CRITICAL_ONLY
        # Pull requests issued at level 0 (before the level was known) end by then.
        await asyncio.sleep(settings.pull_expires + 0.2)
        for i in range(150):  # a normal backlog: 1.5 s of work for one handler slot
            await publish(js, config, msg_id=f"n{i}", conversation=f"support{i % 30}")
        for i in range(15):
            msg_id = f"crit{i}"
            sent_at[msg_id] = time.monotonic()
            await publish(
                js, config, msg_id=msg_id, conversation=f"vip{i}", priority=Priority.CRITICAL
            )
            await asyncio.sleep(0.03)
        await wait_until(lambda: _drained(js, config), within=20)
    await nc.close()

    assert len(waits) == 15
    worst = max(waits.values())
    assert worst < 0.3, f"critical waited {worst:.3f}s behind normal"
    assert most_normal == 1  # a quarter of 4 handler slots


async def test_a_class_the_spec_marks_sheddable_is_not_pulled(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    sheddable = frozenset({Priority.NORMAL, Priority.BULK})
    await publish_degradation(
        js, config.stream, DegradationLevel.SHED_BULK, "test", sheddable=sheddable
    )
    done: list[Priority] = []

    async def record(delivery: Delivery, ctx: HandlerContext) -> None:
        done.append(delivery.priority)

    settings = worker_settings(config)
    async with running_worker(nats_url, settings, record) as worker:
        worker.on_degradation(await read_degradation(js, config.stream))
        assert worker.sheddable == sheddable
        await asyncio.sleep(settings.pull_expires + 0.2)
        for p in (Priority.NORMAL, Priority.CRITICAL):
            await publish(js, config, msg_id=f"m-{p.value}", conversation=p.value, priority=p)
        await wait_until(lambda: _true(Priority.CRITICAL in done), within=5)
        await asyncio.sleep(0.5)
        held_back = list(done)
        pending = (await js.consumer_info(config.stream, "surge-normal")).num_pending
    await nc.close()

    assert held_back == [Priority.CRITICAL]
    assert pending == 1  # queued, not dropped


async def test_messages_waiting_behind_slow_handlers_are_kept_alive(nats_url: str) -> None:
    # One lane, 1 s per message, ack_wait 1.5 s: the 3rd message waits ~2 s in the lane.
    policy = PriorityPolicy(ack_wait=1.5, max_deliver=5, backoff=(0.05,))
    config = unique_pipeline(policies=dict.fromkeys(PRIORITIES, policy))
    nc, js = await provisioned(nats_url, config)
    for i in range(3):
        await publish(js, config, msg_id=f"m{i}", conversation="c1")
    deliveries: list[int] = []

    async def slow(delivery: Delivery, ctx: HandlerContext) -> None:
        deliveries.append(delivery.num_delivered)
        await asyncio.sleep(1.0)

    settings = worker_settings(config, concurrency=1, prefetch=4)
    async with running_worker(nats_url, settings, slow) as worker:
        await wait_until(lambda: _drained(js, config), within=15)
        await asyncio.sleep(0.3)
        duplicates = worker.metrics.processed_count(Priority.NORMAL, "duplicate")
    await nc.close()

    assert deliveries == [1, 1, 1]
    assert duplicates == 0  # no second copy was ever delivered to be absorbed
