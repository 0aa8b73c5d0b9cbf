"""The composer stage on a real nats-server with real `surge-worker` processes:
acknowledgements on arrival, exactly one reply across a kill -9 between compose and ack,
degraded notices."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from tests.integration.dataplane_support import (
    ROOT,
    provisioned,
    publish,
    spawn_worker,
    unique_pipeline,
    worker_process_env,
)
from tests.integration.waits import wait_until

from surge_workers.contract import DegradationLevel, Priority
from surge_workers.degradation import publish_degradation
from surge_workers.intake import INTAKE_CONSUMER
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.replies import ReplyKind, replies_stream, reply_subject
from surge_workers.reply_feed import ReplyEvent, reply_feed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _replies(js: object, config: PipelineConfig, tenant: str, conv: str) -> list[ReplyEvent]:
    subject = reply_subject(config.subject_prefix, tenant, conv)
    async with reply_feed(js, replies_stream(config.stream), subject) as feed:
        return await feed.stored(wait=2.0)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_each_new_conversation_is_acknowledged_once_on_arrival(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    worker = spawn_worker(
        nats_url, config, SURGE_HANDLER="surge_workers.handlers:simulated", SURGE_WORK_MS="5"
    )
    try:
        for i in range(3):
            await publish(js, config, msg_id=f"a{i}", conversation="c-a", text="help")
        await publish(js, config, msg_id="b0", conversation="c-b", tenant="globex")

        async def acked() -> bool:
            a = await _replies(js, config, "acme", "c-a")
            b = await _replies(js, config, "globex", "c-b")
            return len(a) >= 1 and len(b) >= 1

        await wait_until(acked, within=20)
        a = await _replies(js, config, "acme", "c-a")
        b = await _replies(js, config, "globex", "c-b")
    finally:
        _stop(worker)
        await nc.close()
    assert [e.reply.kind for e in a if e.reply] == [ReplyKind.ACK]
    assert a[0].reply is not None
    assert a[0].reply.in_reply_to == "a0"
    assert a[0].reply.position is not None
    assert a[0].reply.position >= 1
    assert "Thanks" in a[0].reply.text
    assert b[0].reply is not None
    assert b[0].reply.tenant == "globex"


async def test_kill_9_between_compose_and_ack_yields_exactly_one_reply(nats_url: str) -> None:
    # Short intake ack_wait so the killed worker's message comes back within the test.
    config = unique_pipeline(intake=PriorityPolicy(ack_wait=1.0, max_deliver=5, backoff=(0.1,)))
    nc, js = await provisioned(nats_url, config)
    crashing = subprocess.Popen(  # noqa: ASYNC220 - a process the test kills
        [sys.executable, "-m", "tests.integration.crash_after_reply"],
        env=worker_process_env(nats_url, config),
        cwd=ROOT,
    )
    survivor = None
    try:
        await publish(js, config, msg_id="k0", conversation="c-k", priority=Priority.CRITICAL)
        returncode = await _wait_exit(crashing, 20)
        assert returncode == -9, "the worker must have died by SIGKILL after the reply"
        stored_before = await _replies(js, config, "acme", "c-k")
        assert len(stored_before) == 1
        info = await js.consumer_info(config.stream, INTAKE_CONSUMER)
        assert info.num_ack_pending == 1, "the message was composed for but never acked"

        survivor = spawn_worker(nats_url, config, SURGE_HANDLER="surge_workers.handlers:noop")

        async def settled() -> bool:
            i = await js.consumer_info(config.stream, INTAKE_CONSUMER)
            redelivered = (i.delivered.consumer_seq or 0) >= 2
            return i.num_ack_pending == 0 and i.num_pending == 0 and redelivered

        await wait_until(settled, within=30)
        after = await _replies(js, config, "acme", "c-k")
    finally:
        if crashing.poll() is None:
            crashing.kill()
        if survivor is not None:
            _stop(survivor)
        await nc.close()
    assert [e.seq for e in after] == [e.seq for e in stored_before]
    assert [e.reply.kind for e in after if e.reply] == [ReplyKind.ACK]


async def _wait_exit(proc: subprocess.Popen[bytes], within: float) -> int | None:
    async def done() -> bool:
        return proc.poll() is not None

    await wait_until(done, within=within)
    return proc.returncode


async def test_level_2_sends_a_notice_and_skips_the_bulk_acknowledgement(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    await publish_degradation(js, config.stream, DegradationLevel.SHED_BULK, "test")
    worker = spawn_worker(nats_url, config, SURGE_HANDLER="surge_workers.handlers:noop")
    try:
        await publish(js, config, msg_id="n0", conversation="c-n", priority=Priority.NORMAL)
        await publish(js, config, msg_id="b0", conversation="c-bulk", priority=Priority.BULK)

        async def both() -> bool:
            n = await _replies(js, config, "acme", "c-n")
            b = await _replies(js, config, "acme", "c-bulk")
            return len(n) >= 2 and len(b) >= 1

        await wait_until(both, within=20)
        normal = await _replies(js, config, "acme", "c-n")
        bulk = await _replies(js, config, "acme", "c-bulk")
    finally:
        _stop(worker)
        await nc.close()
    assert sorted(e.reply.kind.value for e in normal if e.reply) == ["ack", "notice"]
    assert [e.reply.kind for e in bulk if e.reply] == [ReplyKind.NOTICE]
    assert all(e.reply.degradation_level == 2 for e in normal + bulk if e.reply)


def test_pipeline_rejects_a_reply_dedup_window_shorter_than_redeliveries() -> None:
    from surge_workers.errors import ConfigError

    with pytest.raises(ConfigError, match="replies_duplicate_window"):
        replace(unique_pipeline(), replies_duplicate_window=10.0)
