"""MetricsSource against a real nats-server: backlog, arrivals, completions, ages, holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from surge_operator.api import Priority
from surge_operator.metrics_source import JetStreamMetricsSource
from surge_operator.policy import PolicyConfig, Reason, ScalingState, decide
from surge_workers import contract
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pipeline(
    nats_server: NatsServer,
) -> AsyncIterator[tuple[JetStreamContext, PipelineConfig]]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=1, reconnect_time_wait=0.1)
    js = nc.jetstream(timeout=2)
    config = PipelineConfig(
        stream=f"METRICS_{uuid.uuid4().hex[:6].upper()}", subject_prefix="mt", partitions=4
    )
    await provision_pipeline(js, config)
    try:
        yield js, config
    finally:
        await nc.close()


async def publish(
    js: JetStreamContext, config: PipelineConfig, priority: Priority, count: int
) -> None:
    wire = contract.Priority(priority.value)
    for i in range(count):
        conversation = f"c{i % 7}"
        await js.publish(
            contract.message_subject(
                config.subject_prefix, wire, conversation, config.partitions, tenant=""
            ),
            b"{}",
            headers={contract.Header.MSG_ID: uuid.uuid4().hex},
        )


async def ack(js: JetStreamContext, config: PipelineConfig, priority: Priority, count: int) -> None:
    sub = await js.pull_subscribe_bind(
        durable=contract.consumer_name(contract.Priority(priority.value)), stream=config.stream
    )
    done = 0
    while done < count:
        for msg in await sub.fetch(count - done, timeout=2):
            await msg.ack_sync()
            done += 1
    await sub.unsubscribe()


async def test_snapshot_reports_backlog_arrivals_completions_and_ages(
    pipeline: tuple[JetStreamContext, PipelineConfig],
) -> None:
    js, config = pipeline
    clock = Clock()
    source = JetStreamMetricsSource(js, config, clock=clock)

    first = await source.snapshot(at=0.0, current_replicas=1, ready_replicas=1)
    assert first.total_backlog() == 0
    assert first.priorities[Priority.CRITICAL].arrival_rate is None  # no interval yet

    await publish(js, config, Priority.CRITICAL, 30)
    await publish(js, config, Priority.NORMAL, 60)
    await publish(js, config, Priority.BULK, 10)
    await asyncio.sleep(0.3)
    clock.now = 2.0
    second = await source.snapshot(at=2.0, current_replicas=1, ready_replicas=1)
    assert {p: m.backlog for p, m in second.priorities.items()} == {
        Priority.CRITICAL: 30,
        Priority.NORMAL: 60,
        Priority.BULK: 10,
    }
    assert second.priorities[Priority.CRITICAL].arrival_rate == pytest.approx(15.0)
    assert second.priorities[Priority.NORMAL].arrival_rate == pytest.approx(30.0)
    age = second.priorities[Priority.BULK].oldest_unacked_age
    assert age is not None
    assert age >= 0.2
    assert second.waiting == 100

    await ack(js, config, Priority.NORMAL, 20)
    clock.now = 4.0
    third = await source.snapshot(at=4.0, current_replicas=1, ready_replicas=1)
    assert third.priorities[Priority.NORMAL].backlog == 40
    assert third.priorities[Priority.NORMAL].arrival_rate == pytest.approx(0.0)
    assert third.completion_rate == pytest.approx(10.0)


async def test_unreachable_jetstream_yields_a_snapshot_the_policy_holds_on(
    pipeline: tuple[JetStreamContext, PipelineConfig], nats_server: NatsServer
) -> None:
    js, config = pipeline
    clock = Clock()
    source = JetStreamMetricsSource(js, config, clock=clock)
    await source.snapshot(at=0.0, current_replicas=3, ready_replicas=3)
    nats_server.stop()
    clock.now = 10.0
    snapshot = await source.snapshot(at=10.0, current_replicas=3, ready_replicas=3)
    assert snapshot.priorities == {}
    decision, _ = decide(
        snapshot, PolicyConfig().with_scaling(service_rate_hint=50.0), ScalingState()
    )
    assert decision.reason is Reason.HOLD_MISSING_METRICS
    assert decision.replicas == 3
