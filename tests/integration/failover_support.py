"""Shared by the regional failover integration tests: two real regions on loopback, a
controller on them, and helpers that publish, read and wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from tests.fixtures.nats_regions import Regions
from tests.integration.waits import wait_until

from surge_operator.failover import FailoverController, RegionEndpoint, TickOutcome
from surge_operator.policy.failover import FailoverConfig
from surge_workers import provision
from surge_workers.contract import PRIORITIES, Header, Priority, consumer_name, message_subject
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(
    stream="SURGE_FAILOVER", subject_prefix="support", partitions=4, duplicate_window=60.0
)
CONFIG = FailoverConfig(probe_interval=0.25, failure_threshold=3)
N = 120
# How long a mirror may take to catch up on a loaded machine.
MIRROR_WITHIN = 10.0


def controller_for(regions: Regions, config: FailoverConfig = CONFIG) -> FailoverController:
    return controller_on(regions.endpoints(), config)


def controller_on(
    endpoints: Sequence[RegionEndpoint],
    config: FailoverConfig = CONFIG,
    *,
    active: str | None = None,
    epoch: int = 0,
) -> FailoverController:
    """The controller as the operator builds it, restored from status (active, epoch)."""
    return FailoverController(
        cluster="test/failover",
        endpoints=endpoints,
        primary="east",
        pipeline=PIPELINE,
        config=config,
        active=active,
        epoch=epoch,
        probe_timeout=0.2,
    )


async def mirroring_controller(
    regions: Regions, east_js: JetStreamContext, config: FailoverConfig = CONFIG
) -> FailoverController:
    """The common set-up: the pipeline provisioned in east (the primary) and a controller
    whose first tick has made west east's mirror."""
    await provision.provision_pipeline(east_js, PIPELINE)
    controller = controller_for(regions, config)
    await controller.tick()
    return controller


async def connect(regions: Regions, name: str) -> NatsClient:
    return await nats.connect(regions.servers[name].url, allow_reconnect=False)


async def publish(js: JetStreamContext, ids: range, *, prefix: str = "m") -> list[bool]:
    """Publish one message per id (priority and conversation derived from it); returns
    the PubAck `duplicate` flags."""
    duplicates = []
    for i in ids:
        priority = PRIORITIES[i % len(PRIORITIES)]
        subject = message_subject(PIPELINE.subject_prefix, priority, f"conv-{i % 7}", 4, tenant="")
        ack = await js.publish(
            subject, f"hello {i}".encode(), headers={Header.MSG_ID: f"{prefix}{i}"}
        )
        duplicates.append(bool(ack.duplicate))
    return duplicates


async def message_ids(js: JetStreamContext) -> list[str]:
    info = await js.stream_info(PIPELINE.stream)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(PIPELINE.stream, seq)
        ids.append((msg.headers or {})[Header.MSG_ID])
    return ids


async def mirror_holds(
    regions: Regions, name: str, count: int, *, stream: str = PIPELINE.stream
) -> bool:
    client = await connect(regions, name)
    try:
        info = await client.jetstream().stream_info(stream)
        return info.state.messages >= count
    except nats.js.errors.NotFoundError:
        return False  # the mirror is not created yet
    finally:
        await client.close()


async def wait_mirrored(
    regions: Regions, name: str, count: int, *, stream: str = PIPELINE.stream
) -> None:
    """Wait (bounded) until region `name`'s copy of `stream` holds `count` messages."""
    await wait_until(
        lambda: mirror_holds(regions, name, count, stream=stream), within=MIRROR_WITHIN
    )


async def tick_until_moved(
    controller: FailoverController, *, failback: bool = False, limit: float = 10.0
) -> tuple[TickOutcome, float]:
    started = time.monotonic()
    while True:
        outcome = await controller.tick(failback_requested=failback)
        if outcome.moved:
            return outcome, time.monotonic() - started
        assert outcome.error is None, outcome.error
        assert time.monotonic() - started < limit, outcome.condition_message
        await asyncio.sleep(CONFIG.probe_interval)


async def tick_until_mirrors_change(
    controller: FailoverController, *, ticks: int = 40
) -> TickOutcome:
    """Tick until a tick changes a mirror (an old primary fenced and rebuilt as the
    active region's mirror once it is back); returns that tick's outcome."""
    for _ in range(ticks):
        outcome = await controller.tick()
        if outcome.mirrors:
            return outcome
        await asyncio.sleep(CONFIG.probe_interval)
    raise AssertionError(f"no mirror changed within {ticks} ticks")


async def assert_pending(js: JetStreamContext, *, acked_critical: int) -> None:
    """Each priority's consumer holds its share of the first N messages, less what
    workers acked (critical only) before the failover: nothing acked is replayed."""
    for priority in PRIORITIES:
        consumer = await js.consumer_info(PIPELINE.stream, consumer_name(priority))
        expected = sum(1 for i in range(N) if PRIORITIES[i % 3] is priority)
        if priority is Priority.CRITICAL:
            expected -= acked_critical
        assert consumer.num_pending == expected, priority


async def ack_some(js: JetStreamContext, priority: Priority, count: int) -> int:
    """Act as a worker: fetch and ack `count` messages; returns the last acked seq."""
    sub = await js.pull_subscribe_bind(consumer_name(priority), stream=PIPELINE.stream)
    msgs = await sub.fetch(count, timeout=2.0)
    for msg in msgs:
        await msg.ack_sync()
    await sub.unsubscribe()
    return max(m.metadata.sequence.stream for m in msgs)
