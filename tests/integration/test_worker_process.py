"""Real `surge-worker` processes: kill -9 mid-batch loses and duplicates nothing; SIGTERM
drains in-flight work before exiting."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest
from tests.integration.dataplane_support import (
    backlog,
    provisioned,
    spawn_worker,
    unique_pipeline,
)
from tests.integration.waits import wait_until

from surge_workers.contract import (
    Header,
    Priority,
    consumer_name,
    message_subject,
    transcripts_bucket,
)
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PriorityPolicy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _stored(js: object, config: object) -> int:
    info = await js.stream_info(f"KV_{transcripts_bucket(config.stream)}")  # type: ignore[attr-defined]
    return int(info.state.messages)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def test_kill_9_mid_batch_loses_nothing_and_processes_nothing_twice(nats_url: str) -> None:
    # Short ack_wait so the killed worker's in-flight messages come back quickly.
    policy = PriorityPolicy(ack_wait=2.0, max_deliver=10, backoff=(0.1,))
    config = unique_pipeline(policies=dict.fromkeys(Priority, policy))
    nc, js = await provisioned(nats_url, config)
    sent = [f"m{i}" for i in range(600)]
    futures = []
    for i, msg_id in enumerate(sent):
        conv = f"conv{i % 40}"
        subject = message_subject(
            config.subject_prefix, Priority.NORMAL, conv, config.partitions, tenant="acme"
        )
        headers = {Header.MSG_ID: msg_id, Header.CONVERSATION: conv, Header.TENANT: "acme"}
        futures.append(await js.publish_async(subject, b'{"text": "help"}', headers=headers))
    await asyncio.gather(*futures)
    env = {
        "SURGE_HANDLER": "surge_workers.handlers:simulated",
        "SURGE_WORK_MS": "10",
        "SURGE_CONCURRENCY": "16",
    }
    first = spawn_worker(nats_url, config, **env)
    second = None
    try:
        await wait_until(lambda: _at_least(js, config, 150), within=30)
        ack_pending = (
            await js.consumer_info(config.stream, consumer_name(Priority.NORMAL))
        ).num_ack_pending
        first.send_signal(signal.SIGKILL)  # mid-batch: dozens of messages pulled, unacked
        first.wait(10)
        second = spawn_worker(nats_url, config, **env)
        await wait_until(lambda: _drained(js, config), within=60)
        stored = await _stored(js, config)
        # The stream's per-subject state, not kv.keys(): nats-py's keys() watcher can end
        # before the first entry arrives and report an empty bucket.
        kv_info = await js.stream_info(
            f"KV_{transcripts_bucket(config.stream)}", subjects_filter=">"
        )
        subjects = kv_info.state.subjects or {}
        info = await js.consumer_info(config.stream, consumer_name(Priority.NORMAL))
    finally:
        _stop(first)
        if second is not None:
            _stop(second)
        await nc.close()

    assert ack_pending, "the kill must hit in-flight messages"
    assert info.num_pending == 0
    # One transcript key per message id, created only if absent: equal counts mean every
    # message was stored and none twice.
    assert stored == len(sent)
    assert sorted(k.rsplit(".", 1)[1] for k in subjects) == sorted(sent)
    assert set(subjects.values()) == {1}, "a transcript entry was written twice"


async def _at_least(js: object, config: object, count: int) -> bool:
    try:
        return await _stored(js, config) >= count
    except Exception:
        return False


async def _drained(js: object, config: object) -> bool:
    return await backlog(js, config) == 0  # type: ignore[arg-type]


async def test_sigterm_finishes_in_flight_work_then_exits(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    futures = []
    for i in range(200):
        conv = f"conv{i % 20}"
        subject = message_subject(
            config.subject_prefix, Priority.NORMAL, conv, config.partitions, tenant="acme"
        )
        headers = {Header.MSG_ID: f"m{i}", Header.CONVERSATION: conv, Header.TENANT: "acme"}
        futures.append(await js.publish_async(subject, b'{"text": "hi"}', headers=headers))
    await asyncio.gather(*futures)
    proc = spawn_worker(
        nats_url,
        config,
        SURGE_HANDLER="surge_workers.handlers:simulated",
        SURGE_WORK_MS="100",
        SURGE_CONCURRENCY="4",
        SURGE_PREFETCH="8",
    )
    try:
        await wait_until(lambda: _at_least(js, config, 8), within=30)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        info = await js.consumer_info(config.stream, consumer_name(Priority.NORMAL))
        stored = await _stored(js, config)
    finally:
        _stop(proc)
        await nc.close()

    assert code == 0
    assert info.num_ack_pending == 0  # nothing left waiting for an ack timeout
    assert info.num_redelivered == 0
    assert info.ack_floor is not None
    assert stored == 200 - (info.num_pending or 0)  # every pulled message was finished
    assert (info.num_pending or 0) > 0  # and it stopped pulling new work


async def test_worker_rides_out_a_nats_server_restart(nats_server: NatsServer) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    for i in range(300):
        conv = f"conv{i % 30}"
        subject = message_subject(
            config.subject_prefix, Priority.NORMAL, conv, config.partitions, tenant="acme"
        )
        headers = {Header.MSG_ID: f"m{i}", Header.CONVERSATION: conv, Header.TENANT: "acme"}
        await js.publish(subject, b'{"text": "hi"}', headers=headers)
    await nc.close()
    proc = spawn_worker(
        nats_server.url,
        config,
        SURGE_HANDLER="surge_workers.handlers:simulated",
        SURGE_WORK_MS="20",
        SURGE_CONCURRENCY="8",
    )
    try:
        nc, js = await provisioned(nats_server.url, config)
        await wait_until(lambda: _at_least(js, config, 50), within=30)
        await nc.close()
        nats_server.kill()  # kill -9 the server with work in flight
        await asyncio.sleep(0.5)
        nats_server.start()  # same port and store: JetStream state is recovered
        nc, js = await provisioned(nats_server.url, config)
        await wait_until(lambda: _drained(js, config), within=60)
        stored = await _stored(js, config)
        await nc.close()
        assert proc.poll() is None, "the worker must survive the outage"
    finally:
        _stop(proc)

    assert stored == 300


async def test_a_worker_started_before_provisioning_waits_then_serves(nats_url: str) -> None:
    config = unique_pipeline()
    proc = spawn_worker(nats_url, config)  # no stream, no consumers yet
    try:
        await asyncio.sleep(1.0)
        assert proc.poll() is None
        nc, js = await provisioned(nats_url, config)
        subject = message_subject(
            config.subject_prefix, Priority.CRITICAL, "c1", config.partitions, tenant=""
        )
        await js.publish(
            subject, b'{"text": "hi"}', headers={Header.MSG_ID: "m1", Header.CONVERSATION: "c1"}
        )
        await wait_until(lambda: _drained(js, config), within=20)
        stored = await _stored(js, config)
        await nc.close()
    finally:
        _stop(proc)

    assert stored == 1
