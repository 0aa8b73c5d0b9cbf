"""Transcript and offered.* keys are bounded by per-message TTLs on a real nats-server;
buckets from before per-message TTLs are upgraded by provisioning."""

from __future__ import annotations

from pathlib import Path

import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from tests.integration.dataplane_support import provisioned, unique_pipeline
from tests.integration.gateway_support import running_gateway
from tests.integration.waits import wait_until

from surge_workers.contract import degradation_bucket, transcripts_bucket
from surge_workers.gateway import OfferedReporter
from surge_workers.provision import Action, provision_pipeline
from surge_workers.transcripts import TranscriptEntry, store_entry

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def entry(msg_id: str) -> TranscriptEntry:
    return TranscriptEntry(
        msg_id=msg_id,
        seq=1,
        conversation_id="c1",
        tenant="acme",
        priority="normal",
        team="general",
        text="hi",
        language=None,
        enqueued_at=None,
        stored_at=0.0,
    )


async def test_a_transcript_key_expires_after_its_ttl(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    kv = await js.key_value(transcripts_bucket(config.stream))
    assert await store_entry(kv, entry("short"), ttl=1)
    assert await store_entry(kv, entry("long"), ttl=3600)
    assert not await store_entry(kv, entry("short"), ttl=1)  # still there: a duplicate

    async def gone() -> bool:
        try:
            await kv.get("t.acme.c1.short")
        except nats.js.errors.KeyNotFoundError:
            return True
        return False

    await wait_until(gone, within=10, interval=0.2)
    kept = await kv.get("t.acme.c1.long")
    await nc.close()
    assert kept.value is not None


async def test_offered_counts_carry_a_ttl(nats_url: str, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    async with running_gateway(nats_url, config, tmp_path) as (_, gateway):
        reporter = OfferedReporter(gateway, instance="gw-1")
        await reporter.report_once()
    bucket = degradation_bucket(config.stream)
    raw = await js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.offered.gw-1")
    await nc.close()
    assert (raw.headers or {}).get("Nats-TTL") == "300"


async def test_provisioning_enables_message_ttls_on_an_older_bucket(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    name = transcripts_bucket(config.stream)
    await js.delete_key_value(name)
    # The bucket's stream as older clients made it: no per-message TTLs.
    await js.add_stream(
        StreamConfig(
            name=f"KV_{name}",
            subjects=[f"$KV.{name}.>"],
            max_msgs_per_subject=1,
            allow_rollup_hdrs=True,
            deny_delete=True,
            discard=DiscardPolicy.NEW,
            allow_direct=True,
        )
    )
    result = await provision_pipeline(js, config)
    after = await js.stream_info(f"KV_{name}")
    kv = await js.key_value(name)
    stored = await store_entry(kv, entry("m1"), ttl=60)
    await nc.close()

    assert f"kv/{name}" in result.names(Action.UPDATED)
    assert after.config.allow_msg_ttl
    assert stored
