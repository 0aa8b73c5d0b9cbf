"""Replies reach the customer through the gateway: a real `surge-gateway` and `surge-worker`
on a real nats-server. Acknowledgement over Server-Sent Events, agents' replies on the same
path, resume from Last-Event-ID across a gateway restart, and tenant isolation."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from tests.integration.dataplane_support import provisioned, spawn_worker, unique_pipeline
from tests.integration.sse_support import GatewayProcess, collect, stored

from surge_workers.natsserver import free_port
from surge_workers.pipeline import PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACME = "acme-token"
GLOBEX = "globex-token"


@pytest.fixture
def pipeline(nats_url: str) -> PipelineConfig:
    config = unique_pipeline()

    async def setup() -> None:
        nc, _ = await provisioned(nats_url, config)
        await nc.close()

    asyncio.run(setup())
    return config


@pytest.fixture
def gateway(nats_url: str, pipeline: PipelineConfig, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(nats_url, pipeline, tmp_path, free_port())
    process.start()
    try:
        yield process
    finally:
        assert process.stop() in (0, None), "the gateway must stop cleanly with streams open"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def _post(base: str, path: str, token: str, body: dict[str, object]) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 202, await response.text()
        result: dict[str, object] = await response.json()
        return result


async def test_a_message_posted_to_the_gateway_is_acknowledged_over_sse(
    nats_url: str, pipeline: PipelineConfig, gateway: GatewayProcess
) -> None:
    worker = spawn_worker(
        nats_url, pipeline, SURGE_HANDLER="surge_workers.handlers:simulated", SURGE_WORK_MS="5"
    )
    try:
        listening = asyncio.create_task(collect(gateway.base, "c-sse", ACME, count=2))
        await asyncio.sleep(0.5)  # the stream is open before the message is sent
        message = {"id": "m-1", "conversation_id": "c-sse", "text": "my parcel is lost"}
        await _post(gateway.base, "/v1/messages", ACME, message)
        reply = {"id": "r-1", "text": "Found it, on its way.", "author": "dana"}
        for _ in range(200):  # the agent answers after the acknowledgement went out
            if await stored(gateway.base, "c-sse", ACME):
                break
            await asyncio.sleep(0.1)
        await _post(gateway.base, "/v1/conversations/c-sse/replies", ACME, reply)
        got = await listening
    finally:
        _stop(worker)
    assert [e.event for e in got] == ["ack", "agent"]
    ack, agent = got
    assert ack.data["in_reply_to"] == "m-1"
    assert ack.data["position"] >= 1
    assert "tenant" not in ack.data
    assert agent.data["text"] == "Found it, on its way."
    assert agent.data["author"] == "dana"
    assert ack.id < agent.id


async def test_resume_from_last_event_id_after_the_gateway_restarts(
    gateway: GatewayProcess,
) -> None:
    path = "/v1/conversations/c-resume/replies"
    for i in range(3):
        await _post(gateway.base, path, ACME, {"id": f"r{i}", "text": f"reply {i}"})
    first = await collect(gateway.base, "c-resume", ACME, count=3)
    assert gateway.stop() == 0
    # Written while no gateway runs: a client must get them after reconnecting.
    gateway.start()
    for i in range(3, 6):
        await _post(gateway.base, path, ACME, {"id": f"r{i}", "text": f"reply {i}"})
    resumed = await collect(gateway.base, "c-resume", ACME, count=3, last_event_id=first[-1].id)
    everything = await stored(gateway.base, "c-resume", ACME)
    assert [e.data["in_reply_to"] for e in first] == ["r0", "r1", "r2"]
    assert [e.data["in_reply_to"] for e in resumed] == ["r3", "r4", "r5"]  # no gap, no repeat
    assert [e.id for e in first + resumed] == [e.id for e in everything]
    retried = await _post(gateway.base, path, ACME, {"id": "r4", "text": "reply 4"})
    assert retried["duplicate"] is True
    assert len(await stored(gateway.base, "c-resume", ACME)) == 6


async def test_a_tenant_cannot_open_another_tenants_event_stream(gateway: GatewayProcess) -> None:
    await _post(gateway.base, "/v1/conversations/c-secret/replies", ACME, {"id": "s1", "text": "x"})
    assert [e.data["in_reply_to"] for e in await stored(gateway.base, "c-secret", ACME)] == ["s1"]
    # Same conversation id, other tenant's token: its own (empty) conversation, never acme's.
    assert await stored(gateway.base, "c-secret", GLOBEX) == []
    with pytest.raises(TimeoutError):
        await collect(gateway.base, "c-secret", GLOBEX, count=1, within=2.0)
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            async with session.get(
                f"{gateway.base}/v1/conversations/c-secret/events", headers=headers
            ) as response:
                assert response.status == 401
        async with session.get(
            f"{gateway.base}/v1/conversations/c-secret/events",
            headers={"Authorization": f"Bearer {ACME}", "Last-Event-ID": "abc"},
        ) as response:
            assert response.status == 400
