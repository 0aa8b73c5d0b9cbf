"""The autoscaler's JetStream snapshot stays exact in an R3 cluster (3 real servers on
loopback running the operator's generated config).

KEDA's users hit stale `num_pending` read from followers (kedacore/keda #7322, #3860), an
undetected consumer-leader change (#6042) and scale-to-max when the consumer was missing
(#7657). JetStream answers `$JS.API.CONSUMER.INFO` from the consumer's Raft leader, and
Surge reads only through that API, so the figure must equal the truth after a consumer
leader step-down, a meta leader step-down and the kill of a server; a missing consumer
must give no figures (the policy holds), never a huge backlog.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from tests.integration.natsops_support import connect, managed_region, provisioned, region_ctx
from tests.integration.waits import first_value

from surge_operator.api import Priority
from surge_operator.errors import ConsumerMissingError
from surge_operator.metrics_source import JetStreamMetricsSource
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.policy.types import Snapshot
from surge_operator.resources.nats.accounts import Role
from surge_workers.contract import Header, consumer_name, message_subject
from surge_workers.contract import Priority as WirePriority
from surge_workers.pipeline import PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PUBLISHED, FETCHED, ACKED = 200, 50, 30
TRUTH = (PUBLISHED - FETCHED) + (FETCHED - ACKED)  # num_pending + num_ack_pending


async def _load(cluster: LocalNatsCluster, config: PipelineConfig) -> None:
    nc = await connect(cluster, Role.GATEWAY)
    js = nc.jetstream(timeout=5)
    for n in range(PUBLISHED):
        subject = message_subject(
            config.subject_prefix, WirePriority.NORMAL, f"c{n}", config.partitions, tenant="t"
        )
        headers = {Header.MSG_ID: f"m{n}", Header.CONVERSATION: f"c{n}", Header.TENANT: "t"}
        await js.publish(subject, b"{}", headers=headers)
    await nc.close()
    worker = await connect(cluster, Role.WORKER)
    sub = await worker.jetstream(timeout=5).pull_subscribe_bind(
        consumer_name(WirePriority.NORMAL), stream=config.stream
    )
    msgs = await sub.fetch(FETCHED, timeout=5)
    assert len(msgs) == FETCHED
    for m in msgs[:ACKED]:
        await m.ack_sync()
    await worker.close()  # the other 20 stay ack-pending (ack wait 30 s)


async def normal_backlog(source: JetStreamMetricsSource) -> int | None:
    snap: Snapshot = await source.snapshot(
        at=time.monotonic(), current_replicas=1, ready_replicas=1
    )
    figures = snap.priorities.get(Priority.NORMAL)
    return None if figures is None else figures.backlog


async def settled_backlog(source: JetStreamMetricsSource, within: float = 20.0) -> int | None:
    """The first figure the snapshot gives once JetStream answers again (an election in
    progress yields no figures: the policy holds); never a guess in between."""
    return await first_value(lambda: normal_backlog(source), within=within)


async def consumer_leader(js: JetStreamContext, stream: str) -> str | None:
    """None while the consumer has no leader (its info requests go unanswered then)."""
    try:
        info = await js.consumer_info(stream, consumer_name(WirePriority.NORMAL), timeout=1)
    except (nats.errors.Error, TimeoutError):
        return None
    return info.cluster.leader if info.cluster else None


@pytest.fixture
async def loaded(tmp_path: Path) -> AsyncIterator[tuple[LocalNatsCluster, PipelineConfig]]:
    ctx = region_ctx()
    with managed_region(ctx, tmp_path) as cluster:
        config = await provisioned(cluster, ctx)
        await _load(cluster, config)
        yield cluster, config


@pytest.fixture
async def operator_nc(loaded: tuple[LocalNatsCluster, PipelineConfig]) -> AsyncIterator[Client]:
    """The operator's own connection to the loaded cluster (its NATS user)."""
    nc = await connect(loaded[0], Role.OPERATOR)
    try:
        yield nc
    finally:
        await nc.close()


async def test_backlog_is_exact_after_the_consumer_leader_steps_down(
    loaded: tuple[LocalNatsCluster, PipelineConfig], operator_nc: Client
) -> None:
    _, config = loaded
    js = operator_nc.jetstream(timeout=5)
    source = JetStreamMetricsSource(js, config)
    assert await normal_backlog(source) == TRUTH
    before = await consumer_leader(js, config.stream)
    subject = (
        f"$JS.API.CONSUMER.LEADER.STEPDOWN.{config.stream}.{consumer_name(WirePriority.NORMAL)}"
    )
    reply = json.loads((await operator_nc.request(subject, b"", timeout=5)).data)
    assert "error" not in reply, reply

    async def new_leader() -> str | None:
        leader = await consumer_leader(js, config.stream)
        return leader if leader != before else None

    after = await first_value(new_leader, within=5.0, interval=0.1)
    got = await settled_backlog(source)
    print(f"\nconsumer leader {before} -> {after}: backlog {got} (truth {TRUTH})")
    assert after is not None, f"the consumer leader stayed {before}"
    assert got == TRUTH


async def test_backlog_is_exact_after_the_meta_leader_steps_down(
    loaded: tuple[LocalNatsCluster, PipelineConfig], operator_nc: Client
) -> None:
    cluster, config = loaded
    source = JetStreamMetricsSource(operator_nc.jetstream(timeout=5), config)
    sys_nc = await connect(cluster, Role.SYSTEM)
    reply = json.loads((await sys_nc.request("$JS.API.META.LEADER.STEPDOWN", b"", timeout=5)).data)
    assert "error" not in reply, reply
    got = await settled_backlog(source)
    await sys_nc.close()
    print(f"\nmeta leader stepped down: backlog {got} (truth {TRUTH})")
    assert got == TRUTH


async def test_backlog_is_exact_after_the_consumer_leaders_server_is_killed(
    loaded: tuple[LocalNatsCluster, PipelineConfig], operator_nc: Client
) -> None:
    cluster, config = loaded
    js = operator_nc.jetstream(timeout=5)
    source = JetStreamMetricsSource(js, config)
    leader = await consumer_leader(js, config.stream)
    victim = next(i for i in range(3) if cluster.server_name(i) == leader)
    cluster.servers[victim].kill()
    got = await settled_backlog(source, within=30)
    now_leader = await consumer_leader(js, config.stream)
    print(f"\nkilled {leader} (consumer leader) -> {now_leader}: backlog {got} (truth {TRUTH})")
    assert now_leader != leader
    assert got == TRUTH


async def test_a_missing_consumer_gives_no_figures_and_a_named_error_never_a_huge_backlog(
    loaded: tuple[LocalNatsCluster, PipelineConfig], operator_nc: Client
) -> None:
    _, config = loaded
    js = operator_nc.jetstream(timeout=5)
    await js.delete_consumer(config.stream, consumer_name(WirePriority.NORMAL))
    snap = await JetStreamMetricsSource(js, config).snapshot(
        at=time.monotonic(), current_replicas=1, ready_replicas=1
    )
    # The operator's source says which consumer is gone (StreamReady=False ConsumerMissing).
    with pytest.raises(ConsumerMissingError, match=consumer_name(WirePriority.NORMAL)):
        await JetStreamMetricsSource(js, config, missing_raises=True).snapshot(
            at=time.monotonic(), current_replicas=1, ready_replicas=1
        )
    assert snap.priorities == {}, "no figures: the policy holds instead of scaling to max"
    assert snap.observed_at == float("-inf")
