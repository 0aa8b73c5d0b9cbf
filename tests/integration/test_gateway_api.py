"""The gateway against a real nats-server: accepted writes carry their stream sequence,
retries are deduplicated, every bad input gets its 4xx and leaves the stream unchanged,
degradation and rate limits answer 429 + Retry-After, transcripts read back in order."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.dataplane_support import (
    backlog,
    provisioned,
    running_worker,
    unique_pipeline,
    wait_until,
    worker_settings,
)
from tests.integration.gateway_support import ACME, message, running_gateway

from surge_workers.contract import DegradationLevel, Priority
from surge_workers.degradation import publish_degradation
from surge_workers.handlers import route_and_store
from surge_workers.openapi import committed_document, openapi_document
from surge_workers.pipeline import PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _last_seq(js: Any, config: PipelineConfig) -> int:
    return int((await js.stream_info(config.stream)).state.last_seq)


async def test_accepted_message_reports_its_sequence_and_a_retry_is_deduplicated(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        first = await http.post(f"{base}/v1/messages", json=message())
        retry = await http.post(f"{base}/v1/messages", json=message())
        first_body, retry_body = await first.json(), await retry.json()
    stored = await _last_seq(js, config)
    await nc.close()

    assert first.status == retry.status == 202
    assert first_body == {"id": "m1", "stream": config.stream, "seq": 1, "duplicate": False}
    assert retry_body["seq"] == 1
    assert retry_body["duplicate"] is True
    assert stored == 1


async def test_batch_is_all_or_nothing(nats_url: str, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    good = [message(f"b{i}", conversation_id=f"c{i}") for i in range(5)]
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        refused = await http.post(
            f"{base}/v1/messages/batch", json={"messages": [*good, message("x", priority="urgent")]}
        )
        after_refusal = await _last_seq(js, config)
        accepted = await http.post(f"{base}/v1/messages/batch", json={"messages": good})
        results = (await accepted.json())["results"]
    await nc.close()

    assert refused.status == 422
    assert after_refusal == 0
    assert accepted.status == 202
    assert [r["seq"] for r in results] == [1, 2, 3, 4, 5]


BAD_INPUTS = [
    ("malformed_json", ACME, b'{"id": "m1", ', 400, "malformed_json"),
    ("oversize_body", ACME, json.dumps(message(text="x" * 9000)).encode(), 413, "too_large"),
    ("oversize_text", ACME, json.dumps(message(text="é" * 600)).encode(), 413, "too_large"),
    ("unknown_priority", ACME, json.dumps(message(priority="urgent")).encode(), 422, "invalid"),
    ("bad_id", ACME, json.dumps(message("has space")).encode(), 422, "invalid"),
    ("extra_field", ACME, json.dumps(message(vip=True)).encode(), 422, "invalid"),
    (
        "missing_text",
        ACME,
        json.dumps({"id": "m1", "conversation_id": "c"}).encode(),
        422,
        "invalid",
    ),
    ("missing_token", {}, json.dumps(message()).encode(), 401, "unauthorized"),
    (
        "wrong_scheme",
        {"Authorization": "Basic YWNtZTp4"},
        json.dumps(message()).encode(),
        401,
        "unauthorized",
    ),
    (
        "wrong_token",
        {"Authorization": "Bearer nope"},
        json.dumps(message()).encode(),
        401,
        "unauthorized",
    ),
    ("wrong_tenant", ACME, json.dumps(message(tenant="globex")).encode(), 403, "wrong_tenant"),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
async def test_bad_input_gets_its_4xx_and_leaves_the_stream_unchanged(
    nats_url: str,
    tmp_path: Path,
    headers: dict[str, str],
    body: bytes,
    status: int,
    error: str,
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers={"Content-Type": "application/json", **headers}) as http,
    ):
        single = await http.post(f"{base}/v1/messages", data=body)
        single_body = await single.json()
        if status != 400:  # the same message inside a batch is refused the same way
            batch_body = b'{"messages": [' + body + b"]}"
            batch = await http.post(f"{base}/v1/messages/batch", data=batch_body)
            assert batch.status == status
    stored = await _last_seq(js, config)
    await nc.close()

    assert single.status == status
    assert single_body["error"] == error
    assert stored == 0
    if status == 401:
        assert single.headers["WWW-Authenticate"] == "Bearer"


async def test_a_message_the_stream_refuses_is_503_at_once_not_after_the_timeout(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline(max_msg_size=256)  # below the gateway's text limit (1024)
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        started = time.monotonic()
        refused = await http.post(f"{base}/v1/messages", json=message(text="x" * 600))
        elapsed = time.monotonic() - started
        accepted = await http.post(f"{base}/v1/messages", json=message("m2"))
    stored = await _last_seq(js, config)
    await nc.close()

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert elapsed < 2.0  # the JetStream error reply fails the request, not the 5 s timeout
    assert accepted.status == 202
    assert stored == 1


async def test_degradation_levels_answer_429_with_retry_after(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    # 10 msg/s per tenant; throttled classes get a tenth of it (burst 1)
    async with (
        running_gateway(nats_url, config, tmp_path, rate_limit=10, rate_burst=10) as (
            base,
            gateway,
        ),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        await publish_degradation(js, config.stream, DegradationLevel.SHED_BULK, "test")
        await wait_until(lambda: _is(gateway.level, DegradationLevel.SHED_BULK), within=5)
        bulk = await http.post(f"{base}/v1/messages", json=message("b1", priority="bulk"))
        normal = await http.post(f"{base}/v1/messages", json=message("n1"))
        await publish_degradation(js, config.stream, DegradationLevel.CRITICAL_ONLY, "test")
        await wait_until(lambda: _is(gateway.level, DegradationLevel.CRITICAL_ONLY), within=5)
        # normal is not sheddable: throttled at level 3, not shed
        normal_at_3 = await http.post(f"{base}/v1/messages", json=message("n2"))
        over_throttle = await http.post(f"{base}/v1/messages", json=message("n3"))
        critical = await http.post(f"{base}/v1/messages", json=message("c1", priority="critical"))
        # ... unless the spec marks it sheddable: then it is shed like bulk
        await publish_degradation(
            js,
            config.stream,
            DegradationLevel.SHED_BULK,
            "test",
            sheddable=frozenset({Priority.NORMAL, Priority.BULK}),
        )
        await wait_until(lambda: _is(gateway.sheddable, {Priority.NORMAL, Priority.BULK}), 5)
        normal_shed = await http.post(f"{base}/v1/messages", json=message("n4"))
    stored = await _last_seq(js, config)
    await nc.close()

    assert bulk.status == 429
    assert int(bulk.headers["Retry-After"]) > 0
    assert (await bulk.json())["error"] == "degraded"
    assert normal.status == 202
    assert normal_at_3.status == 202
    assert over_throttle.status == 429
    assert (await over_throttle.json())["error"] == "throttled"
    assert int(over_throttle.headers["Retry-After"]) >= 1
    assert critical.status == 202
    assert normal_shed.status == 429
    assert (await normal_shed.json())["error"] == "degraded"
    assert stored == 3


async def _is(value: object, expected: object) -> bool:
    return value == expected


async def test_per_tenant_rate_limit(nats_url: str, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path, rate_limit=0.5, rate_burst=3) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        codes = [
            (await http.post(f"{base}/v1/messages", json=message(f"a{i}"), headers=ACME)).status
            for i in range(4)
        ]
        limited = await http.post(f"{base}/v1/messages", json=message("a9"), headers=ACME)
        other = await http.post(
            f"{base}/v1/messages",
            json=message("g1", tenant="globex"),
            headers={"Authorization": "Bearer globex-token"},
        )
    await nc.close()

    assert codes == [202, 202, 202, 429]
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.status == 202


async def test_transcript_reads_back_in_order_and_only_for_its_tenant(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    texts = ["my invoice is wrong", "i was charged twice", "any news?"]
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        for i, text in enumerate(texts):
            resp = await http.post(f"{base}/v1/messages", json=message(f"t{i}", text=text))
            assert resp.status == 202
        async with running_worker(nats_url, worker_settings(config), route_and_store):
            await wait_until(lambda: _drained(js, config), within=10)
        mine = await http.get(f"{base}/v1/conversations/conv1/transcript")
        theirs = await http.get(
            f"{base}/v1/conversations/conv1/transcript",
            headers={"Authorization": "Bearer globex-token"},
        )
        missing = await http.get(f"{base}/v1/conversations/nope/transcript")
        transcript = await mine.json()
    await nc.close()

    assert mine.status == 200
    assert [m["id"] for m in transcript["messages"]] == ["t0", "t1", "t2"]
    assert [m["text"] for m in transcript["messages"]] == texts
    assert transcript["team"] == "billing"
    assert theirs.status == 404
    assert missing.status == 404


async def _drained(js: Any, config: PipelineConfig) -> bool:
    return await backlog(js, config) == 0


async def test_openapi_document_served_is_the_committed_one(nats_url: str, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        served = await (await http.get(f"{base}/openapi.json")).json()
        health = await http.get(f"{base}/healthz")
        ready = await http.get(f"{base}/readyz")
        metrics = await (await http.get(f"{base}/metrics")).text()
    await nc.close()

    assert served == committed_document() == json.loads(json.dumps(openapi_document()))
    assert health.status == ready.status == 200
    assert "surge_gateway_requests_total" in metrics
