"""Provisioning is idempotent, updates what JetStream can change, names what it cannot,
and the queue-state read reflects a real stream."""

from __future__ import annotations

from dataclasses import replace

import nats.js.errors
import pytest
from tests.integration.dataplane_support import connect, publish, unique_pipeline

from surge_workers.contract import (
    DEGRADATION_KEY,
    PRIORITIES,
    Priority,
    consumer_name,
    decode_degradation,
    degradation_bucket,
)
from surge_workers.errors import ImmutableFieldError
from surge_workers.pipeline import PriorityPolicy
from surge_workers.provision import Action, delete_pipeline, provision_pipeline
from surge_workers.queue_state import QueueStateUnavailable, read_queue_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_provisioning_twice_creates_then_changes_nothing(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    first = await provision_pipeline(js, config)
    second = await provision_pipeline(js, config)
    await nc.close()

    assert {c.action for c in first.changes} == {Action.CREATED}
    # stream, consumers, dead letters, replies stream + intake consumer, KV buckets
    assert len(first.changes) == 1 + len(PRIORITIES) + 1 + 2 + 3
    assert not second.changed, second.summary()


async def test_changed_spec_updates_stream_and_consumer_fields(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    policies = dict(config.policies)
    policies[Priority.BULK] = PriorityPolicy(ack_wait=90.0, max_deliver=9, backoff=(2.0,))
    changed = replace(config, max_age=3600.0, duplicate_window=30.0, policies=policies)

    result = await provision_pipeline(js, changed)
    stream = await js.stream_info(config.stream)
    bulk = await js.consumer_info(config.stream, consumer_name(Priority.BULK))
    await nc.close()

    updated = {c.name: c.fields for c in result.changes if c.action is Action.UPDATED}
    assert set(updated[config.stream]) == {"max_age", "duplicate_window"}
    assert "metadata.surge.dev/max-deliver" in updated[consumer_name(Priority.BULK)]
    assert stream.config.max_age == pytest.approx(3600.0)
    # The budget is the worker's to count; the server never stops redelivering on its own.
    assert bulk.config.max_deliver == -1
    assert bulk.config.metadata is not None
    assert bulk.config.metadata["surge.dev/max-deliver"] == "9"
    assert bulk.config.metadata["surge.dev/nak-backoff"] == "2"


async def test_changing_storage_is_refused_naming_the_field(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    with pytest.raises(ImmutableFieldError) as caught:
        await provision_pipeline(js, replace(config, storage="memory"))
    still = await js.stream_info(config.stream)
    await nc.close()

    assert caught.value.field == "storage"
    assert "storage" in str(caught.value)
    assert str(getattr(still.config.storage, "value", still.config.storage)) == "file"


async def test_degradation_bucket_starts_at_level_zero_and_is_never_reset(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    kv = await js.key_value(degradation_bucket(config.stream))
    initial = decode_degradation((await kv.get(DEGRADATION_KEY)).value)
    await kv.put(DEGRADATION_KEY, b'{"level": 2, "reason": "test"}')
    await provision_pipeline(js, config)
    after = decode_degradation((await kv.get(DEGRADATION_KEY)).value)
    await nc.close()

    assert int(initial.level) == 0
    assert int(after.level) == 2


async def test_delete_pipeline_removes_everything_and_is_idempotent(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    deleted = await delete_pipeline(js, config)
    again = await delete_pipeline(js, config)
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.stream_info(config.stream)
    with pytest.raises(QueueStateUnavailable):
        await read_queue_state(js, config)
    await nc.close()

    assert len(deleted) == 6  # stream, dead letters, replies, three KV buckets
    assert again == ()


async def test_queue_state_counts_pending_in_flight_and_oldest_age(nats_url: str) -> None:
    config = unique_pipeline()
    nc = await connect(nats_url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    for i in range(3):
        await publish(js, config, msg_id=f"n{i}", conversation=f"c{i}")
    await publish(js, config, msg_id="c0", conversation="x", priority=Priority.CRITICAL)
    sub = await js.pull_subscribe_bind(consumer_name(Priority.NORMAL), stream=config.stream)
    (taken,) = await sub.fetch(1, timeout=2)  # in flight, not acked

    state = await read_queue_state(js, config)
    await nc.close()

    normal = state.priorities[Priority.NORMAL]
    assert (normal.num_pending, normal.num_ack_pending) == (2, 1)
    assert normal.delivered_stream_seq == taken.metadata.sequence.stream
    assert normal.ack_floor_stream_seq == 0
    assert normal.oldest_unacked_age is not None
    assert normal.oldest_unacked_age >= 0
    assert state.priorities[Priority.CRITICAL].num_pending == 1
    assert state.priorities[Priority.BULK].oldest_unacked_age is None
    assert state.last_seq == 4
    assert state.backlog == 4
    assert state.dead_letters == 0
