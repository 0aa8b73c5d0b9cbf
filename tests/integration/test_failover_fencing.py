"""Fenced failover on real nats-servers (east primary, west standby, leafnode-linked).

What each test proves, by message id:
    * promotion is gated on the standby's lag and reports the estimated RPO;
    * a partitioned old primary that kept accepting writes loses none of them and doubles
      none: after the heal they are merged into the new primary by Nats-Msg-Id, in pages,
      with no cap, and the old stream is deleted only once every tail message is counted;
    * a replayed KV entry never overwrites a newer value written after the promotion;
    * ack floors survive an operator restart mid-outage (read from the standby's mirrored
      failover record), so promotion does not replay what workers already acked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import pytest
from nats.js import JetStreamContext
from tests.fixtures.nats_regions import Regions
from tests.integration.failover_support import (
    MIRROR_WITHIN,
    PIPELINE,
    N,
    ack_some,
    connect,
    controller_for,
    message_ids,
    mirroring_controller,
    publish,
    tick_until_mirrors_change,
    tick_until_moved,
    wait_mirrored,
)
from tests.integration.waits import wait_until

from surge_operator.failover import (
    FailoverController,
    MirrorAction,
    MirrorError,
    PromotionError,
    ensure_mirror,
    promote,
    recovery,
)
from surge_operator.failover.probe import read_record
from surge_operator.policy.failover import FailoverConfig, FailoverReason
from surge_workers import provision
from surge_workers.contract import Priority, consumer_name, routing_bucket

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(90)]


async def split_brain_tail(
    regions: Regions, east_js: JetStreamContext, controller: FailoverController, tail: int
) -> None:
    """East takes `tail` messages west never mirrors (link down), the controller sees them
    in a probe, then east dies and west comes back."""
    await controller.tick()
    await publish(east_js, range(N))
    await wait_mirrored(regions, "west", N)
    regions.servers["west"].stop()
    await publish(east_js, range(N, N + tail))
    await controller.tick()  # east's last sequence is now known: N + tail
    regions.servers["east"].kill()
    regions.servers["west"].start()


async def test_promotion_is_gated_on_lag_and_reports_the_rpo(
    regions: Regions, east_js: JetStreamContext
) -> None:
    await provision.provision_pipeline(east_js, PIPELINE)
    gated = FailoverConfig(probe_interval=0.25, failure_threshold=3, max_promotion_lag=5)
    controller = controller_for(regions, gated)
    await split_brain_tail(regions, east_js, controller, 10)

    outcome = None
    for _ in range(gated.failure_threshold + 6):
        outcome = await controller.tick()
        assert not outcome.moved
        await asyncio.sleep(gated.probe_interval)
    assert outcome is not None
    assert outcome.condition_reason == FailoverReason.STANDBY_BEHIND.value
    assert outcome.rpo == 10
    assert "10 messages behind" in outcome.condition_message

    # An operator raises the gate: the same outage now promotes, reporting the RPO.
    controller.config = FailoverConfig(probe_interval=0.25, failure_threshold=3)
    started = time.monotonic()
    moved, _ = await tick_until_moved(controller)
    print(
        f"\npromotion after the gate was raised: {time.monotonic() - started:.2f}s, RPO {moved.rpo}"
    )
    assert moved.rpo == 10
    assert "RPO 10 messages" in moved.condition_message


async def test_a_partitioned_old_primary_loses_and_doubles_nothing(
    regions: Regions, east_js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "PAGE", 16)  # many pages: paging is exercised
    await provision.provision_pipeline(east_js, PIPELINE)
    controller = controller_for(regions)
    await split_brain_tail(regions, east_js, controller, 10)
    killed_at = time.monotonic()
    outcome, _ = await tick_until_moved(controller)
    print(f"\nfailover: east killed -> west promoted in {time.monotonic() - killed_at:.2f}s")
    assert outcome.rpo == 10
    west = await connect(regions, "west")
    east = None
    try:
        west_js = west.jetstream(timeout=2.0)
        await publish(west_js, range(N + 100, N + 110))  # live traffic on the new primary
        # A client that got no answer from east retried m130..m134 against west.
        await publish(west_js, range(N + 200, N + 205))

        # East comes back *partitioned*: still writable, the controller cannot see it yet
        # (its probes fail), and clients still pointed at it keep writing: 200 new ones
        # and the five that were also retried against west.
        regions.servers["east"].start()
        east = await connect(regions, "east")
        partitioned = east.jetstream(timeout=2.0)
        await publish(partitioned, range(N + 300, N + 500))
        await publish(partitioned, range(N + 200, N + 205))

        [change] = (await tick_until_mirrors_change(controller)).mirrors
        assert (change.region, change.action) == ("east", MirrorAction.RECREATED)
        [main] = [r for r in change.recoveries if r.stream == PIPELINE.stream]
        print(
            f"tail recovered: {main.examined} examined, {main.republished} republished, "
            f"{main.duplicates} duplicates absorbed"
        )
        assert main.complete
        assert main.examined == 10 + 200 + 5
        # Once east's leafnode is back (it retries every second), a write taken by east
        # may reach west's stream too: recovery then finds it there by id. How many do
        # depends on timing (26 of 200 in one loaded run); each is counted exactly once.
        assert main.republished + main.duplicates == main.examined
        assert main.duplicates >= 5

        ids = await message_ids(west_js)
        doubled = [i for i, count in Counter(ids).items() if count > 1]
        assert doubled == []
        expected = {f"m{i}" for i in range(N + 10)}
        expected |= {f"m{i}" for i in range(N + 100, N + 110)}
        expected |= {f"m{i}" for i in range(N + 200, N + 205)}
        expected |= {f"m{i}" for i in range(N + 300, N + 500)}
        assert set(ids) == expected
    finally:
        await west.close()
        if east is not None:
            await east.close()


async def test_a_replayed_kv_entry_never_overwrites_a_newer_value(
    regions: Regions, east_js: JetStreamContext
) -> None:
    controller = await mirroring_controller(regions, east_js)
    routing = await east_js.key_value(routing_bucket(PIPELINE.stream))
    await routing.put("c.conv-1", b"team-a")
    kv_stream = f"KV_{routing_bucket(PIPELINE.stream)}"
    await wait_mirrored(regions, "west", 1, stream=kv_stream)
    await controller.tick()
    regions.servers["west"].stop()
    await routing.put("c.conv-1", b"team-b (east, never mirrored)")
    await routing.put("c.conv-2", b"team-c (east, never mirrored)")
    regions.servers["east"].kill()
    regions.servers["west"].start()
    await tick_until_moved(controller)

    west = await connect(regions, "west")
    try:
        west_routing = await west.jetstream(timeout=2.0).key_value(routing_bucket(PIPELINE.stream))
        await west_routing.put("c.conv-1", b"team-d (west, newer epoch)")
        regions.servers["east"].start()
        [change] = (await tick_until_mirrors_change(controller)).mirrors
        [kv] = [r for r in change.recoveries if r.stream == kv_stream]
        assert (kv.examined, kv.republished, kv.superseded) == (2, 1, 1)
        assert (await west_routing.get("c.conv-1")).value == b"team-d (west, newer epoch)"
        assert (await west_routing.get("c.conv-2")).value == b"team-c (east, never mirrored)"
    finally:
        await west.close()


async def test_ack_floors_survive_an_operator_restart_mid_outage(
    regions: Regions, east_js: JetStreamContext
) -> None:
    first = await mirroring_controller(regions, east_js)
    await publish(east_js, range(N))
    acked_to = await ack_some(east_js, Priority.CRITICAL, 20)
    await first.tick()  # writes the record (epoch 0, east, floors) into east's KV

    async def record_mirrored() -> bool:
        client = await connect(regions, "west")
        try:
            record = await read_record(client.jetstream(timeout=2.0), PIPELINE.stream)
            return record is not None and record.floors.get(Priority.CRITICAL) == acked_to
        finally:
            await client.close()

    await wait_until(record_mirrored, within=MIRROR_WITHIN)
    await wait_mirrored(regions, "west", N)  # mirrors run independently
    regions.servers["east"].kill()
    restarted = controller_for(regions)  # the operator restarted: nothing in memory
    outcome, _ = await tick_until_moved(restarted)
    assert outcome.promotion is not None
    assert outcome.promotion.start_seqs[Priority.CRITICAL] == acked_to + 1
    assert outcome.rpo == 0  # known, from the record's last sequence, though never probed
    west = await connect(regions, "west")
    try:
        info = await west.jetstream(timeout=2.0).consumer_info(
            PIPELINE.stream, consumer_name(Priority.CRITICAL)
        )
        assert info.num_pending == sum(1 for i in range(N) if i % 3 == 0) - 20
    finally:
        await west.close()


async def test_a_deposed_leader_cannot_promote_or_delete(
    regions: Regions, east_js: JetStreamContext
) -> None:
    """The newer leader (Lease token 2) promoted west; a stale one (token 1) that has not
    noticed yet is refused by the stamps on the streams, in both directions."""
    await mirroring_controller(regions, east_js)
    await publish(east_js, range(10))
    await wait_mirrored(regions, "west", 10)
    west, east = regions.endpoint("west"), regions.endpoint("east")
    await promote(west, PIPELINE, epoch=1, leader_token=2)
    with pytest.raises(PromotionError, match="fenced"):
        await promote(west, PIPELINE, epoch=1, leader_token=1)
    with pytest.raises(MirrorError, match="fenced"):
        await ensure_mirror(east, west, PIPELINE, leader_token=1)
    assert (await east_js.stream_info(PIPELINE.stream)).config.mirror is None  # untouched
    change = await ensure_mirror(east, west, PIPELINE, leader_token=2)
    assert change.action is MirrorAction.RECREATED


async def test_a_standby_with_fewer_servers_is_promoted_at_its_own_replica_count(
    regions: Regions, east_js: JetStreamContext
) -> None:
    """The primary's spec asks for R3; west runs one server (`stream_replicas=1`), as a
    small standby region may. Promotion keeps west's own count: R3 cannot exist there."""
    await mirroring_controller(regions, east_js)
    await publish(east_js, range(10))
    await wait_mirrored(regions, "west", 10)
    west = dataclasses.replace(regions.endpoint("west"), stream_replicas=1)
    result = await promote(west, dataclasses.replace(PIPELINE, replicas=3), epoch=1)
    assert result.stream == "promoted"
    nc = await connect(regions, "west")
    try:
        info = await nc.jetstream(domain="west").stream_info(PIPELINE.stream)
    finally:
        await nc.close()
    assert info.config.mirror is None
    assert info.config.num_replicas == 1
    assert info.state.messages == 10
