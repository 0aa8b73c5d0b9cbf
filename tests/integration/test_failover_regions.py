"""Regional failover against real nats-servers: east (primary, leafnode hub) and west
(standby, leafnode remote), each with its own JetStream domain, on loopback.

The controller mirrors east's stream into west, east is killed with SIGKILL, the
controller promotes west within threshold x interval, and nothing is lost: the mirror's
messages, their dedup state and the workers' ack positions survive. When east comes back
it is fenced, its unmirrored tail re-published to west and it becomes west's mirror; an
explicit failback then returns traffic to east without losing a message.
"""

from __future__ import annotations

import time

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from tests.fixtures.nats_regions import Regions
from tests.integration.failover_support import (
    CONFIG,
    PIPELINE,
    N,
    ack_some,
    assert_pending,
    connect,
    controller_for,
    message_ids,
    mirroring_controller,
    publish,
    tick_until_mirrors_change,
    tick_until_moved,
    wait_mirrored,
)

from surge_operator.failover import (
    MirrorAction,
    pipeline_streams,
)
from surge_operator.policy.failover import FailoverReason
from surge_workers import provision
from surge_workers.contract import (
    Priority,
    stream_subjects,
    transcripts_bucket,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60)]


async def test_killing_the_primary_promotes_the_mirror_without_losing_messages(
    regions: Regions, east_js: JetStreamContext
) -> None:
    await provision.provision_pipeline(east_js, PIPELINE)
    controller = controller_for(regions)

    first = await controller.tick()
    assert first.active_region == "east"
    assert first.decision.reason is FailoverReason.HEALTHY
    assert [(m.region, m.action) for m in first.mirrors] == [("west", MirrorAction.CREATED)]

    await publish(east_js, range(N))
    acked_to = await ack_some(east_js, Priority.CRITICAL, 10)
    transcripts = await east_js.key_value(transcripts_bucket(PIPELINE.stream))
    await transcripts.put("t.conv-1.m0", b"stored once")
    await wait_mirrored(regions, "west", N)
    kv_stream = f"KV_{transcripts_bucket(PIPELINE.stream)}"
    await wait_mirrored(regions, "west", 1, stream=kv_stream)
    steady = await controller.tick()  # records east's ack floors
    assert steady.mirrors == ()
    assert steady.probes["west"].role == "mirror"
    assert steady.probes["west"].domain == "west"
    assert steady.probes["west"].stream().mirror_lag == 0
    assert steady.probes["west"].stream().mirror_seen is not None
    assert {n: v.role for n, v in steady.probes["west"].streams.items()} == {
        n: "mirror" for n in pipeline_streams(PIPELINE)
    }
    assert steady.probes["east"].ack_floors[Priority.CRITICAL] == acked_to

    regions.servers["east"].kill()
    killed_at = time.monotonic()
    outcome, _ = await tick_until_moved(controller)
    failover_seconds = time.monotonic() - killed_at
    print(f"\nfailover: east killed -> west promoted in {failover_seconds:.2f}s")
    # Detection needs `threshold` failed probes one interval apart, plus the promotion.
    assert failover_seconds < CONFIG.failure_threshold * CONFIG.probe_interval + 2.0

    assert outcome.active_region == "west"
    assert outcome.epoch == 1
    assert outcome.failed_over
    assert outcome.condition_reason == "StandbyPromoted"
    assert outcome.history_entry is not None
    assert (outcome.history_entry.kind, outcome.history_entry.from_value) == ("failover", "east")
    assert outcome.history_entry.to_value == "west"
    assert outcome.event is not None
    assert outcome.event.type == "Warning"
    assert outcome.promotion is not None
    assert outcome.promotion.stream == "promoted"
    assert outcome.promotion.start_seqs[Priority.CRITICAL] == acked_to + 1

    west = await connect(regions, "west")
    try:
        js = west.jetstream(timeout=2.0)
        info = await js.stream_info(PIPELINE.stream)
        assert info.config.mirror is None
        assert sorted(info.config.subjects or []) == sorted(stream_subjects("support"))
        assert info.state.messages == N
        assert await message_ids(js) == [f"m{i}" for i in range(N)]
        # the 10 acked in east before the crash are not delivered again
        await assert_pending(js, acked_critical=10)
        # The idempotency record (transcripts KV) came along and is writable.
        assert outcome.promotion.promoted == pipeline_streams(PIPELINE)
        west_transcripts = await js.key_value(transcripts_bucket(PIPELINE.stream))
        assert (await west_transcripts.get("t.conv-1.m0")).value == b"stored once"
        await west_transcripts.put("t.conv-2.m1", b"stored in west")
        # Writable, and the mirror's dedup state survived promotion.
        assert await publish(js, range(N - 20, N)) == [True] * 20
        assert await publish(js, range(N, N + 5)) == [False] * 5
        assert (await js.stream_info(PIPELINE.stream)).state.messages == N + 5
    finally:
        await west.close()

    # Further ticks with east still dead: one promotion per outage.
    for _ in range(5):
        later = await controller.tick()
        assert not later.moved
        assert later.epoch == 1


async def test_the_old_primary_returns_as_a_mirror_and_failback_loses_nothing(
    regions: Regions, east_js: JetStreamContext
) -> None:
    controller = await mirroring_controller(regions, east_js)
    await publish(east_js, range(N))
    await wait_mirrored(regions, "west", N)

    # West loses the link, east takes 10 more messages that never reach the mirror, then
    # east dies: the split-brain tail.
    regions.servers["west"].stop()
    await publish(east_js, range(N, N + 10))
    regions.servers["east"].kill()
    regions.servers["west"].start()

    outcome, _ = await tick_until_moved(controller)
    assert outcome.active_region == "west"
    west = await connect(regions, "west")
    east: NatsClient | None = None
    try:
        west_js = west.jetstream(timeout=2.0)
        assert (await west_js.stream_info(PIPELINE.stream)).state.messages == N
        await publish(west_js, range(N + 10, N + 15))  # traffic served by west

        # East comes back with its tail; the controller fences it, re-publishes the tail
        # into west and rebuilds east as west's mirror.
        regions.servers["east"].start()
        rejoined = await tick_until_mirrors_change(controller)
        assert [(m.region, m.action, m.recovered) for m in rejoined.mirrors] == [
            ("east", MirrorAction.RECREATED, 10)
        ]
        assert rejoined.active_region == "west"
        every_id = {f"m{i}" for i in range(N + 15)}
        assert set(await message_ids(west_js)) == every_id

        # Explicit failback: east must catch up, then takes the writes again.
        await wait_mirrored(regions, "east", N + 15)
        back, _ = await tick_until_moved(controller, failback=True)
        assert back.active_region == "east"
        assert back.epoch == 2
        assert not back.failed_over
        assert back.history_entry is not None
        assert back.history_entry.kind == "failback"
        assert [(m.region, m.action) for m in back.mirrors] == [("west", MirrorAction.RECREATED)]

        east = await connect(regions, "east")
        east_now = east.jetstream(timeout=2.0)
        info = await east_now.stream_info(PIPELINE.stream)
        assert info.config.mirror is None
        assert set(await message_ids(east_now)) == every_id
        await publish(east_now, range(N + 15, N + 20))
        await wait_mirrored(regions, "west", info.state.messages + 5)
        west_info = await west_js.stream_info(PIPELINE.stream)
        assert west_info.config.mirror is not None
        assert west_info.config.mirror.external is not None
        assert west_info.config.mirror.external.api == "$JS.east.API"
    finally:
        await west.close()
        if east is not None:
            await east.close()


async def test_a_dead_standby_is_never_promoted(
    regions: Regions, east_js: JetStreamContext
) -> None:
    controller = await mirroring_controller(regions, east_js)
    regions.servers["west"].kill()
    regions.servers["east"].kill()
    outcome = None
    for _ in range(CONFIG.failure_threshold + 2):
        outcome = await controller.tick()
        assert not outcome.moved
    assert outcome is not None
    assert outcome.active_region == "east"
    assert outcome.condition_reason == FailoverReason.NO_HEALTHY_STANDBY.value
    assert "west failing" in outcome.condition_message
