"""The operator's NATS edge against a real nats-server: provisioning from a spec, the
degradation level in KV, queue snapshots, deletion, and connection failures as domain errors."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from surge_operator.api import parse_spec
from surge_operator.errors import NatsUnavailableError, StreamSubjectsOverlapError
from surge_operator.jetstream import NatsAuth, NatsJetStreamOps, NatsPool
from surge_operator.kube import ClusterObject
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.snapshots import JetStreamSnapshots
from surge_workers.contract import DEGRADATION_KEY, degradation_bucket
from surge_workers.natsserver import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = parse_spec(
    {"regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://x:4222"}}]}
)
REF = ClusterObject("ns", "c", "uid")


async def test_provision_is_idempotent_and_delete_removes_everything(
    nats_server: NatsServer,
) -> None:
    pool = NatsPool()
    ops = NatsJetStreamOps(pool)
    config = pipeline_config("OPS_ONE", SPEC)
    try:
        first = await ops.provision(nats_server.url, NatsAuth(), config)
        assert "stream/OPS_ONE created" in first
        assert await ops.provision(nats_server.url, NatsAuth(), config) == ""  # nothing to do
        await ops.publish_level(nats_server.url, NatsAuth(), "OPS_ONE", 2, "short", 1.0)
        js = await ops.jetstream(nats_server.url, NatsAuth())
        kv = await js.key_value(degradation_bucket("OPS_ONE"))
        entry = await kv.get(DEGRADATION_KEY)
        assert entry.value is not None
        assert json.loads(entry.value)["level"] == 2
        assert json.loads(entry.value)["sheddable"] == ["bulk"]  # the default
        await ops.publish_level(
            nats_server.url, NatsAuth(), "OPS_ONE", 3, "spec", 2.0, sheddable={"bulk", "normal"}
        )
        entry = await kv.get(DEGRADATION_KEY)
        assert entry.value is not None
        assert json.loads(entry.value)["sheddable"] == ["normal", "bulk"]
        deleted = await ops.delete(nats_server.url, NatsAuth(), config)
        assert "OPS_ONE" in deleted
        assert await ops.delete(nats_server.url, NatsAuth(), config) == ()
    finally:
        await pool.close()


async def test_two_clusters_with_one_prefix_get_a_clear_reason(nats_server: NatsServer) -> None:
    pool = NatsPool()
    ops = NatsJetStreamOps(pool)
    try:
        await ops.provision(nats_server.url, NatsAuth(), pipeline_config("OVER_A", SPEC))
        with pytest.raises(StreamSubjectsOverlapError, match="subjectPrefix"):
            await ops.provision(nats_server.url, NatsAuth(), pipeline_config("OVER_B", SPEC))
    finally:
        await pool.close()


async def test_unreachable_nats_fails_fast_with_a_domain_error() -> None:
    pool = NatsPool(connect_timeout=0.5)
    ops = NatsJetStreamOps(pool)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NatsUnavailableError, match=r"127\.0\.0\.1:1"):
        await ops.provision("nats://127.0.0.1:1", NatsAuth(), pipeline_config("NOPE", SPEC))
    assert loop.time() - started < 5
    await pool.close()


async def test_connections_are_shared_per_url_and_credentials(nats_server: NatsServer) -> None:
    pool = NatsPool()
    try:
        a = await pool.client(nats_server.url, NatsAuth())
        b = await pool.client(nats_server.url, NatsAuth())
        c = await pool.client(nats_server.url, NatsAuth(token="t"))
        assert a is b
        assert a is not c
    finally:
        await pool.close()


async def test_snapshots_measure_backlog_and_arrival_rate(nats_server: NatsServer) -> None:
    pool = NatsPool()
    ops = NatsJetStreamOps(pool)
    config = pipeline_config("SNAP", SPEC)
    clock = iter([1000.0, 1002.0])
    snaps = JetStreamSnapshots(ops, clock=lambda: next(clock))
    nc = await nats.connect(nats_server.url)
    try:
        await ops.provision(nats_server.url, NatsAuth(), config)
        source = await snaps.source(
            REF, url=nats_server.url, auth=NatsAuth(), pipeline=config, spec=SPEC
        )
        first = await source.snapshot(at=1000.0, current_replicas=1, ready_replicas=1)
        assert first.total_backlog() == 0
        js = nc.jetstream()
        for i in range(50):
            await js.publish(f"support.normal.{i % 4}", b"{}")
        again = await snaps.source(
            REF, url=nats_server.url, auth=NatsAuth(), pipeline=config, spec=SPEC
        )
        assert again is source  # kept between ticks: it turns counters into rates
        second = await source.snapshot(at=1002.0, current_replicas=1, ready_replicas=1)
        assert second.total_backlog() == 50
        assert second.total_arrival_rate() == pytest.approx(25.0)
    finally:
        await nc.close()
        await pool.close()


async def test_credentials_in_a_url_never_reach_the_error_message() -> None:
    pool = NatsPool(connect_timeout=0.5)
    ops = NatsJetStreamOps(pool)
    with pytest.raises(NatsUnavailableError) as err:
        await ops.provision(
            "nats://alice:s3cret@127.0.0.1:1", NatsAuth(), pipeline_config("NOPE", SPEC)
        )
    assert "s3cret" not in err.value.message
    assert "***@127.0.0.1:1" in err.value.message
    await pool.close()
