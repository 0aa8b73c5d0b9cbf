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
    provisioned,
    unique_pipeline,
    work_off,
)
from tests.integration.gateway_support import ACME, message, running_gateway
from tests.integration.waits import wait_until

from surge_workers.api_models import MessageIn
from surge_workers.contract import DegradationLevel, Priority
from surge_workers.degradation import publish_degradation
from surge_workers.gateway import OfferedReporter
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


async def test_a_message_the_stream_refuses_as_too_large_is_413_at_once(
    nats_url: str, tmp_path: Path
) -> None:
    # The gateway does not know the stream's limit here: the stream's refusal is a 413.
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

    assert refused.status == 413
    assert "maxMsgSize" in (await refused.json())["detail"]
    assert elapsed < 2.0  # the JetStream error reply fails the request, not the 5 s timeout
    assert accepted.status == 202
    assert stored == 1


async def test_the_stream_limit_from_the_spec_refuses_exactly_what_the_stream_would(
    nats_url: str, tmp_path: Path
) -> None:
    limit = 1024
    config = unique_pipeline(max_msg_size=limit)
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path, max_msg_size=limit, max_text_bytes=4096) as (
            base,
            gateway,
        ),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        # Find the text length whose stored message is exactly at the limit.
        probe = gateway._stored_size("acme", MessageIn.model_validate(message("fit", text="x")))
        fits = "x" * (1 + limit - probe)
        at_limit = await http.post(f"{base}/v1/messages", json=message("fit", text=fits))
        over = await http.post(f"{base}/v1/messages", json=message("ovr", text=fits + "x"))
        astral = await http.post(f"{base}/v1/messages", json=message("emoji", text="😀" * 90))
        over_body, astral_body = await over.json(), await astral.json()
    stored = await _last_seq(js, config)
    await nc.close()

    assert at_limit.status == 202, "a message the stream can hold must be accepted"
    assert over.status == 413
    assert "spec.stream.maxMsgSize" in over_body["detail"]
    assert astral.status == 413  # 90 characters, but 1080 bytes as JSON escapes
    assert "limit of 1024" in astral_body["detail"]
    assert stored == 1  # the refused ones were never sent


async def test_a_full_stream_refuses_new_writes_with_507_and_keeps_the_queued_ones(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline(max_bytes=4096)  # discard: new when a byte limit is set
    nc, js = await provisioned(nats_url, config)
    statuses: list[int] = []
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        for i in range(40):
            resp = await http.post(f"{base}/v1/messages", json=message(f"f{i}", text="y" * 200))
            statuses.append(resp.status)
            if resp.status != 202:
                full, full_body = resp, await resp.json()
                break
    info = await js.stream_info(config.stream)
    await nc.close()

    accepted = statuses.count(202)
    assert statuses[-1] == 507
    assert full.headers["Retry-After"] == "30"
    assert full_body["error"] == "stream_full"
    assert "nothing queued was dropped" in full_body["detail"]
    assert info.state.messages == accepted  # every accepted message is still there
    assert info.state.first_seq == 1


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
        await work_off(nats_url, js, config, route_and_store, within=10)
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


async def test_transcript_pages_follow_the_cursor_and_the_page_size_is_bounded(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    url = "/v1/conversations/conv1/transcript"
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        batch = {"messages": [message(f"p{i}", text=f"n{i}") for i in range(7)]}
        assert (await http.post(f"{base}/v1/messages/batch", json=batch)).status == 202
        await work_off(nats_url, js, config, route_and_store, within=10)
        pages: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
            resp = await http.get(f"{base}{url}{query}")
            assert resp.status == 200
            pages.append(await resp.json())
            cursor = pages[-1]["next_cursor"]
            if cursor is None:
                break
        whole = await (await http.get(f"{base}{url}")).json()
        bad = {
            q: (await http.get(f"{base}{url}?{q}")).status
            for q in ("limit=0", "limit=501", "limit=x", "cursor=-1", "cursor=abc")
        }
        largest = await http.get(f"{base}{url}?limit=500")
    await nc.close()

    assert [len(p["messages"]) for p in pages] == [3, 3, 1]
    paged = [m["id"] for p in pages for m in p["messages"]]
    assert paged == [f"p{i}" for i in range(7)] == [m["id"] for m in whole["messages"]]
    assert whole["next_cursor"] is None
    assert bad == dict.fromkeys(bad, 422)
    assert largest.status == 200


async def test_a_tenant_rate_limit_holds_across_gateway_replicas(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_url, config)
    limits = {"rate_limit": 0.2, "rate_burst": 10}
    async with (
        running_gateway(nats_url, config, tmp_path / "a", **limits) as (base_a, gw_a),
        running_gateway(nats_url, config, tmp_path / "b", **limits) as (base_b, gw_b),
        aiohttp.ClientSession(headers=ACME) as http,
    ):
        reporters = [
            OfferedReporter(gw_a, instance="gw-a", interval=0.2),
            OfferedReporter(gw_b, instance="gw-b", interval=0.2),
        ]
        for reporter in reporters:
            reporter.start()
        shares = lambda: _is((gw_a.limiter.share, gw_b.limiter.share), (0.5, 0.5))  # noqa: E731
        await wait_until(shares, within=10)
        codes = [
            (await http.post(f"{base}/v1/messages", json=message(f"r{i}"))).status
            for i, base in zip(range(30), [base_a, base_b] * 15, strict=False)
        ]
        for reporter in reporters:
            await reporter.stop()
    await nc.close()

    # One gateway alone would admit the burst (10); two without sharing would admit 20.
    assert 10 <= codes.count(202) <= 11, codes
    assert set(codes) == {202, 429}
