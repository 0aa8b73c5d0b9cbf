"""The operator killed (kill -9) in the middle of a failover, on real nats-servers.

The operator's failover loop runs as its own process (surge_operator.chaos.operator_process),
with its status in a file: it is restored from that status, as the operator is from the
MessagingCluster's, and killed at a chosen point between the NATS actions and the status
patch. Its successor must finish the failover exactly once (one history entry, the epoch
bumped once and never going back), keep the old primary fenced (it rejoins as a mirror;
writes sent there land in the new writer), lose no acknowledged message and not replay
what workers had acked (the ack floors come from the standby's mirrored record, not from
the dead process's memory). The recovery times are printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext
from tests.fixtures.nats_regions import Regions
from tests.integration.failover_support import (
    CONFIG,
    PIPELINE,
    N,
    ack_some,
    assert_pending,
    connect,
    message_ids,
    mirror_holds,
    publish,
)
from tests.integration.waits import wait_until

from surge_operator.chaos.operator_driver import FailoverProcess, history
from surge_operator.failover.probe import read_record
from surge_operator.failover.recovery import META_EPOCH
from surge_workers import provision
from surge_workers.contract import Priority, message_subject

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

#: Bounds on waits (a loaded 2-core machine), not expectations of speed.
WITHIN = 60.0


@pytest.fixture
def operator(regions: Regions, tmp_path: Path) -> Iterator[FailoverProcess]:
    op = FailoverProcess(regions.endpoints(), PIPELINE, CONFIG, tmp_path)
    try:
        yield op
    finally:
        op.stop()


async def active_is(op: FailoverProcess, region: str) -> bool:
    return op.status().get("activeRegion") == region


async def mirrors(regions: Regions, name: str, source: str) -> bool:
    """`name`'s message stream is a mirror of `source`'s (fenced: it takes no writes)."""
    client = await connect(regions, name)
    try:
        info = await client.jetstream(timeout=2.0).stream_info(PIPELINE.stream)
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await client.close()
    mirror = info.config.mirror
    return mirror is not None and mirror.external is not None and source in mirror.external.api


async def floors_recorded_in(regions: Regions, name: str, critical: int) -> bool:
    """The ack floors reached `name` in the mirrored failover record."""
    client = await connect(regions, name)
    try:
        record = await read_record(client.jetstream(timeout=2.0), PIPELINE.stream)
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await client.close()
    return record is not None and record.floors.get(Priority.CRITICAL) == critical


async def written_lands_in(regions: Regions, name: str) -> str | None:
    """Publish into region `name`'s server: which JetStream domain stored it?"""
    client = await connect(regions, name)
    try:
        subject = message_subject(PIPELINE.subject_prefix, Priority.NORMAL, "conv-x", 4, tenant="")
        ack = await client.jetstream(timeout=2.0).publish(
            subject, b"sent to the old primary", headers={"Nats-Msg-Id": f"via-{name}"}
        )
        return ack.domain
    finally:
        await client.close()


async def failed_over_to_west(
    regions: Regions, east_js: JetStreamContext, operator: FailoverProcess
) -> None:
    """N messages in east, mirrored to west; east killed and west made active."""
    await provision.provision_pipeline(east_js, PIPELINE)
    await publish(east_js, range(N))
    operator.start()
    await wait_until(lambda: mirror_holds(regions, "west", N), within=WITHIN)
    regions.servers["east"].kill()
    await wait_until(lambda: active_is(operator, "west"), within=WITHIN)


async def killed_between_fence_and_failback(
    regions: Regions, west_js: JetStreamContext, operator: FailoverProcess
) -> None:
    """20 more written to west, east back as its caught-up mirror, then a failback asked
    of an operator armed to die after fencing west and before promoting east."""
    await publish(west_js, range(N, N + 20))
    regions.servers["east"].start()
    await wait_until(lambda: mirrors(regions, "east", "west"), within=WITHIN)
    await wait_until(lambda: mirror_holds(regions, "east", N + 20), within=WITHIN)
    operator.start("fenced")
    operator.request_failback()
    await operator.wait_crash(WITHIN)


def failovers(op: FailoverProcess) -> list[tuple[str, str, str]]:
    return history(op.status())


@pytest.mark.parametrize("crash", ["consumers", "promoted"])
async def test_an_operator_killed_mid_promotion_is_finished_once_by_its_successor(
    regions: Regions, east_js: JetStreamContext, operator: FailoverProcess, crash: str
) -> None:
    await provision.provision_pipeline(east_js, PIPELINE)
    await publish(east_js, range(N))
    operator.start(crash)
    await wait_until(lambda: mirror_holds(regions, "west", N), within=WITHIN)
    acked_to = await ack_some(east_js, Priority.CRITICAL, 10)
    await wait_until(lambda: floors_recorded_in(regions, "west", acked_to), within=WITHIN)

    regions.servers["east"].kill()
    await operator.wait_crash(WITHIN)
    # Killed between the NATS actions and the status patch: west is writable at epoch 1,
    # the status still says east at epoch 0.
    assert (operator.status()["activeRegion"], operator.status()["failoverEpoch"]) == ("east", 0)
    west = await connect(regions, "west")
    try:
        js = west.jetstream(timeout=2.0)
        info = await js.stream_info(PIPELINE.stream)
        assert info.config.mirror is None
        assert (info.config.metadata or {})[META_EPOCH] == "1"

        restarted = time.monotonic()
        operator.start()
        await wait_until(lambda: active_is(operator, "west"), within=WITHIN)
        finished = time.monotonic() - restarted
        status = operator.status()
        assert status["failoverEpoch"] == 1
        assert failovers(operator) == [("failover", "east", "west")]
        info = await js.stream_info(PIPELINE.stream)
        assert (info.config.metadata or {})[META_EPOCH] == "1"
        assert await message_ids(js) == [f"m{i}" for i in range(N)]
        # the 10 acked in east before the crash are not delivered again
        await assert_pending(js, acked_critical=10)
        assert await publish(js, range(N, N + 20)) == [False] * 20  # west takes writes

        # The old primary comes back: fenced, it rejoins as west's mirror, and a write
        # sent to it lands in west; the epoch stays, the failover is not repeated.
        healed = time.monotonic()
        regions.servers["east"].start()
        await wait_until(lambda: mirrors(regions, "east", "west"), within=WITHIN)
        rejoined = time.monotonic() - healed
        assert await written_lands_in(regions, "east") == "west"
        await wait_until(lambda: mirror_holds(regions, "east", N + 21), within=WITHIN)
        assert set(await message_ids(js)) == {f"m{i}" for i in range(N + 20)} | {"via-east"}
        assert operator.status()["failoverEpoch"] == 1
        assert failovers(operator) == [("failover", "east", "west")]
    finally:
        await west.close()
    print(
        f"\noperator killed at {crash!r}: successor finished the failover "
        f"{operator.recovery()} ({finished:.2f}s with Python start-up); old primary "
        f"fenced as a mirror {rejoined:.2f}s after it returned"
    )


async def test_a_promotion_left_unrecorded_stands_when_the_old_primary_returns_first(
    regions: Regions, east_js: JetStreamContext, operator: FailoverProcess
) -> None:
    """Killed after promoting west but before the status patch, and east is back before
    the successor starts: the status says east, NATS says west at epoch 1. West has taken
    acknowledged writes since; the successor must keep west (and the epoch), not undo
    the promotion."""
    await provision.provision_pipeline(east_js, PIPELINE)
    await publish(east_js, range(N))
    operator.start("promoted")
    await wait_until(lambda: mirror_holds(regions, "west", N), within=WITHIN)
    regions.servers["east"].kill()
    await operator.wait_crash(WITHIN)
    west = await connect(regions, "west")
    try:
        js = west.jetstream(timeout=2.0)
        assert await publish(js, range(N, N + 20)) == [False] * 20  # acknowledged by west
        regions.servers["east"].start()

        restarted = time.monotonic()
        operator.start()
        await wait_until(lambda: active_is(operator, "west"), within=WITHIN)
        finished = time.monotonic() - restarted
        await wait_until(lambda: mirrors(regions, "east", "west"), within=WITHIN)
        fenced = time.monotonic() - restarted
        assert operator.status()["failoverEpoch"] == 1
        assert failovers(operator) == [("failover", "east", "west")]
        assert await written_lands_in(regions, "east") == "west"
        assert set(await message_ids(js)) == {f"m{i}" for i in range(N + 20)} | {"via-east"}
        info = await js.stream_info(PIPELINE.stream)
        assert info.config.mirror is None
        assert (info.config.metadata or {})[META_EPOCH] == "1"
    finally:
        await west.close()
    print(
        f"\nold primary back before the successor: west kept {operator.recovery()} "
        f"({finished:.2f}s with Python start-up), east fenced as its mirror after {fenced:.2f}s"
    )


async def test_an_operator_killed_mid_failback_is_finished_once_by_its_successor(
    regions: Regions, east_js: JetStreamContext, operator: FailoverProcess
) -> None:
    """Failback fences the active region (west), waits for east's mirror, then promotes
    east; killed between the fence and the promotion, writes are paused. The successor,
    with the failback still requested, finishes it once: east writable at epoch 2, west
    its mirror, nothing lost."""
    await failed_over_to_west(regions, east_js, operator)
    west = await connect(regions, "west")
    try:
        js = west.jetstream(timeout=2.0)
        await killed_between_fence_and_failback(regions, js, operator)
        assert (operator.status()["activeRegion"], operator.status()["failoverEpoch"]) == (
            "west",
            1,
        )
        fenced = await js.stream_info(PIPELINE.stream)
        assert fenced.config.mirror is None
        # writes paused: west fenced (JetStream keeps only its own name), east a mirror
        assert fenced.config.subjects in ([], None, [PIPELINE.stream])

        restarted = time.monotonic()
        operator.start()
        await wait_until(lambda: active_is(operator, "east"), within=WITHIN)
        finished = time.monotonic() - restarted
        await wait_until(lambda: mirrors(regions, "west", "east"), within=WITHIN)
        assert operator.status()["failoverEpoch"] == 2
        assert failovers(operator) == [("failover", "east", "west"), ("failback", "west", "east")]
        # the request is cleared once done (after the status write, as the operator does)
        await wait_until(operator.failback_cleared, within=WITHIN)
        assert await written_lands_in(regions, "west") == "east"
        east = await connect(regions, "east")
        try:
            east_now = east.jetstream(timeout=2.0)
            every = {f"m{i}" for i in range(N + 20)} | {"via-west"}
            assert set(await message_ids(east_now)) == every
        finally:
            await east.close()
    finally:
        await west.close()
    print(
        f"\noperator killed mid-failback: successor finished it {operator.recovery()} "
        f"({finished:.2f}s with Python start-up)"
    )


async def test_a_failback_withdrawn_while_its_operator_was_dead_gives_writes_back(
    regions: Regions, east_js: JetStreamContext, operator: FailoverProcess
) -> None:
    """Killed between fencing west and promoting east, and the failback annotation is
    removed before the successor starts: nobody asks to move any more, but west is still
    fenced, so no region takes writes. The successor must resume writes on west (the epoch
    and the active region unchanged, no history entry) and lose nothing."""
    await failed_over_to_west(regions, east_js, operator)
    west = await connect(regions, "west")
    try:
        js = west.jetstream(timeout=2.0)
        await killed_between_fence_and_failback(regions, js, operator)
        assert (await js.stream_info(PIPELINE.stream)).config.subjects in (
            [],
            None,
            [PIPELINE.stream],
        )  # writes paused
        operator.annotations.unlink()  # the SRE withdrew the failback meanwhile

        restarted = time.monotonic()
        operator.start()

        async def west_writable() -> bool:
            info = await js.stream_info(PIPELINE.stream)
            return bool(info.config.subjects) and info.config.subjects != [PIPELINE.stream]

        await wait_until(west_writable, within=WITHIN)
        resumed = time.monotonic() - restarted
        assert await publish(js, range(N + 20, N + 40)) == [False] * 20  # west takes writes
        assert (operator.status()["activeRegion"], operator.status()["failoverEpoch"]) == (
            "west",
            1,
        )
        assert failovers(operator) == [("failover", "east", "west")]
        info = await js.stream_info(PIPELINE.stream)
        assert info.config.mirror is None
        assert (info.config.metadata or {})[META_EPOCH] == "1"
        # east is still west's mirror and catches up with everything west acknowledged
        await wait_until(lambda: mirrors(regions, "east", "west"), within=WITHIN)
        await wait_until(lambda: mirror_holds(regions, "east", N + 40), within=WITHIN)
        assert set(await message_ids(js)) == {f"m{i}" for i in range(N + 40)}
    finally:
        await west.close()
    print(
        "\nfailback withdrawn while its operator was dead: "
        f"writes resumed on west after {resumed:.2f}s"
    )
