"""LocalProcessTarget runs real surge-worker processes and leaves none behind."""

from __future__ import annotations

import asyncio
import os
import uuid

import nats
import pytest

from surge_operator.scale_target import LocalProcessTarget
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def wait_ready(target: LocalProcessTarget, n: int, within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while await target.ready() < n:
        assert asyncio.get_running_loop().time() < deadline, "workers never became ready"
        await asyncio.sleep(0.2)


async def test_scale_up_probes_readiness_and_scale_down_drains(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    config = PipelineConfig(stream=f"TGT_{uuid.uuid4().hex[:6].upper()}", subject_prefix="tg")
    await provision_pipeline(nc.jetstream(), config)
    await nc.close()
    env = dict(os.environ)
    env.update(
        SURGE_NATS_URL=nats_server.url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        SURGE_LOG_LEVEL="warning",
    )
    target = LocalProcessTarget(env, port_factory=free_port)
    try:
        await target.scale(2)
        assert await target.current() == 2
        await wait_ready(target, 2)
        processes = [w.process for w in target._workers]
        await target.scale(1)
        assert await target.current() == 1
        await asyncio.wait_for(processes[1].wait(), 15)
        assert processes[1].returncode == 0  # SIGTERM -> drained -> clean exit
    finally:
        await target.close()
    assert all(p.returncode is not None for p in processes)
    assert await target.current() == 0
