"""Tenants cannot collide, through the real gateway, worker and nats-server: the same
message id and conversation id used by two tenants are two messages, both processed, each
transcript visible only to its tenant, each routed on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.dataplane_support import (
    Recorder,
    provisioned,
    unique_pipeline,
    work_off,
)
from tests.integration.gateway_support import running_gateway

from surge_workers.contract import routing_bucket, transcripts_bucket
from surge_workers.handlers import route_and_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACME = {"Authorization": "Bearer acme-token"}
GLOBEX = {"Authorization": "Bearer globex-token"}


def body(text: str, **fields: Any) -> dict[str, Any]:
    return {"id": "m1", "conversation_id": "conv1", "text": text, **fields}


async def _keys(js: Any, bucket: str) -> set[str]:
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=">")
    prefix = f"$KV.{bucket}."
    return {subject.removeprefix(prefix) for subject in info.state.subjects or {}}


async def test_same_ids_in_two_tenants_are_two_messages_each_seen_only_by_its_tenant(
    nats_url: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        # The repro: B reuses A's message id and conversation id.
        a = await http.post(
            f"{base}/v1/messages", json=body("my invoice is wrong", language="en"), headers=ACME
        )
        b = await http.post(
            f"{base}/v1/messages", json=body("mein paket fehlt", language="de"), headers=GLOBEX
        )
        a_retry = await http.post(
            f"{base}/v1/messages", json=body("my invoice is wrong", language="en"), headers=ACME
        )
        a_body, b_body, retry_body = await a.json(), await b.json(), await a_retry.json()
        recorder = Recorder(route_and_store)
        await work_off(nats_url, js, config, recorder, within=15)
        mine = await http.get(f"{base}/v1/conversations/conv1/transcript", headers=ACME)
        theirs = await http.get(f"{base}/v1/conversations/conv1/transcript", headers=GLOBEX)
        mine_doc, theirs_doc = await mine.json(), await theirs.json()
    transcript_keys = await _keys(js, transcripts_bucket(config.stream))
    routing_keys = await _keys(js, routing_bucket(config.stream))
    await nc.close()

    assert (a.status, b.status) == (202, 202)
    assert a_body["duplicate"] is False
    assert b_body["duplicate"] is False, "tenant B's message must not be taken for A's"
    assert b_body["seq"] != a_body["seq"]
    # Within a tenant a retry still is one message.
    assert retry_body == {**a_body, "duplicate": True}
    assert recorder.done == [("conv1", "m1"), ("conv1", "m1")]  # both processed
    assert mine.status == theirs.status == 200
    assert [(m["id"], m["text"]) for m in mine_doc["messages"]] == [("m1", "my invoice is wrong")]
    assert [(m["id"], m["text"]) for m in theirs_doc["messages"]] == [("m1", "mein paket fehlt")]
    # Routed on their own: one tenant's sticky team never pins the other's conversation.
    assert mine_doc["team"] == "billing"
    assert theirs_doc["team"] == "dach"
    assert transcript_keys == {"t.acme.conv1.m1", "t.globex.conv1.m1"}
    assert routing_keys == {"c.acme.conv1", "c.globex.conv1"}


async def test_a_tenant_named_with_separators_cannot_reach_another_tenants_keys(
    nats_url: str, tmp_path: Path
) -> None:
    # "acme.conv1" as a tenant and "m1" as conversation would spell "acme.conv1.m1" if the
    # parts were joined naively; as key tokens they cannot.
    tokens = {"acme": ["acme-token"], "acme.conv1": ["forger-token"]}
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    async with (
        running_gateway(nats_url, config, tmp_path, tokens=tokens) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        victim = await http.post(f"{base}/v1/messages", json=body("victim", id="x"), headers=ACME)
        forger = await http.post(
            f"{base}/v1/messages",
            json={"id": "x", "conversation_id": "m1", "text": "forged"},
            headers={"Authorization": "Bearer forger-token"},
        )
        await work_off(nats_url, js, config, route_and_store, within=15)
        mine = await http.get(f"{base}/v1/conversations/conv1/transcript", headers=ACME)
        mine_doc = await mine.json()
    transcript_keys = await _keys(js, transcripts_bucket(config.stream))
    await nc.close()

    assert victim.status == forger.status == 202
    assert (await forger.json())["duplicate"] is False
    assert [m["text"] for m in mine_doc["messages"]] == ["victim"]
    assert len(transcript_keys) == 2
