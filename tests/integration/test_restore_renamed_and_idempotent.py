"""Restores on a real nats-server: into another stream name, and without answering twice.

The second case reproduces a backup taken while the intake was answering: the message
stream is snapshotted with the intake's messages still pending, the replies stream (taken
after it) already holds their acknowledgements. The restore happens after the replies'
duplicate window, so only the restore marker keeps the customer from a second answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.backup_support import (
    NAMESPACE,
    cluster_ref,
    delete_cluster_streams,
    directory_store,
    restore_from,
)
from tests.integration.dataplane_support import (
    backlog,
    provisioned,
    publish,
    unique_pipeline,
    work_off,
    worker_settings,
)
from tests.integration.waits import wait_until

from surge_operator.backup.manifest import backup_order
from surge_operator.backup.runner import ClusterRef, back_up
from surge_operator.backup.store import BackupStore
from surge_operator.backup.verify import message_ids, transcript_ids
from surge_operator.errors import RestoreConflictError
from surge_workers.composer import acknowledge
from surge_workers.contract import DegradationState, routing_bucket, scoped_id
from surge_workers.handlers import route_and_store
from surge_workers.intake import IntakeStage
from surge_workers.logs import get_logger
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.replies import ReplyHeader, replies_stream
from surge_workers.restored import MARKER_KEY, RestoreMarker
from surge_workers.templates import TemplateStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _publish(js: Any, config: PipelineConfig, count: int, tag: str) -> set[str]:
    """One new conversation per message (each one opens a conversation: one ack each)."""
    for i in range(count):
        await publish(js, config, msg_id=f"{tag}-{i}", conversation=f"{tag}-c{i}", tenant="acme")
    return {scoped_id("acme", f"{tag}-{i}") for i in range(count)}


async def test_a_restore_goes_into_another_stream_name_with_transcripts_and_routing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    store = directory_store(tmp_path)
    try:
        ids = await _publish(js, config, 40, "m")
        await work_off(nats_server.url, js, config, route_and_store, within=60)
        transcripts = await transcript_ids(js, config.stream)
        routing = await js.key_value(routing_bucket(config.stream))
        sticky = {k: (await routing.get(k)).value for k in await routing.keys()}
        await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abc123")
        await delete_cluster_streams(js, config.stream)

        renamed = dataclasses.replace(config, stream=f"{config.stream}NEW")
        into = cluster_ref(renamed, "mc-new")
        # a staging stream left by an attempt killed mid-way must not block this one
        staged = f"KV_{routing_bucket(renamed.stream)}-restore"
        await js.add_stream(name=staged, subjects=[f"{staged}.left"])
        result = await restore_from(nc, store, cluster_ref(config), spool=tmp_path / "s", into=into)
        assert set(result.streams) == {name for name, _ in backup_order(renamed.stream)}
        assert set(await message_ids(js, renamed.stream, renamed.subject_prefix)) == ids
        assert await transcript_ids(js, renamed.stream) == transcripts
        moved = await js.key_value(routing_bucket(renamed.stream))
        assert {k: (await moved.get(k)).value for k in await moved.keys() if k != MARKER_KEY} == (
            sticky
        )
        # consumers came back with their ack floors: nothing to redo under the new name
        assert await backlog(js, renamed) == 0
        names = {s.config.name for s in await js.streams_info()}
        assert not any(n.endswith("-restore") for n in names), "the staging streams are gone"
        # the restored buckets take new writes under their new name
        await moved.put("c.after", b"x")
        assert (await moved.get("c.after")).value == b"x"
    finally:
        await nc.close()


async def test_a_restore_refuses_another_subject_prefix_and_names_the_field(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    store = directory_store(tmp_path)
    try:
        await _publish(js, config, 3, "p")
        await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abc123")
        await delete_cluster_streams(js, config.stream)
        other = ClusterRef(NAMESPACE, "mc-new", config.stream, f"{config.subject_prefix}x")
        with pytest.raises(RestoreConflictError, match=r"spec\.stream\.subjectPrefix"):
            await restore_from(nc, store, cluster_ref(config), spool=tmp_path / "s", into=other)
        assert {s.config.name for s in await js.streams_info()}.isdisjoint(
            name for name, _ in backup_order(config.stream)
        ), "nothing was written"
    finally:
        await nc.close()


class AnswerWhileSnapshotting:
    """A store that, when the message stream's snapshot is uploaded, first lets `during`
    run: what happens then lands in the streams snapshotted after it, as in a backup
    taken while the intake is busy."""

    def __init__(
        self, inner: BackupStore, stream: str, during: Callable[[], Awaitable[None]]
    ) -> None:
        self.inner, self.stream, self.during = inner, stream, during

    async def upload(self, key: str, path: Path) -> None:
        if key.endswith(f"/{self.stream}.snapshot"):
            await self.during()
        await self.inner.upload(key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _intake(nc: Any, config: PipelineConfig) -> IntakeStage:
    return IntakeStage(
        nc,
        worker_settings(config),
        acknowledge,
        TemplateStore(),
        log=get_logger("test-intake"),
        state=DegradationState,
        service_time=lambda _: 0.0,
    )


async def _replies(js: Any, config: PipelineConfig) -> Counter[str]:
    """In-reply-to id of every stored reply."""
    info = await js.stream_info(replies_stream(config.stream))
    seen: Counter[str] = Counter()
    if info.state.messages == 0:
        return seen
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(replies_stream(config.stream), seq)
        seen[(msg.headers or {})[ReplyHeader.IN_REPLY_TO]] += 1
    return seen


async def _answered(js: Any, config: PipelineConfig, count: int) -> bool:
    return sum((await _replies(js, config)).values()) >= count


async def test_replies_answered_before_the_backup_are_not_sent_again_after_a_restore(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # A short replies duplicate window, so the restore below happens after it, as a real
    # restore (hours or days later) does.
    quick = PriorityPolicy(ack_wait=0.5, max_deliver=1, backoff=())
    config = unique_pipeline(intake=quick, replies_duplicate_window=1.0)
    nc, js = await provisioned(nats_server.url, config)
    store = directory_store(tmp_path)
    count = 25

    async def answer_everything() -> None:
        intake = _intake(nc, config)
        await intake.start()
        try:
            await wait_until(lambda: _answered(js, config, count), within=60)
        finally:
            await intake.stop()

    try:
        before = await _publish(js, config, count, "a")
        busy = AnswerWhileSnapshotting(store, config.stream, answer_everything)
        manifest = await back_up(
            nc, busy, cluster_ref(config), spool=tmp_path / "s", nonce="abc123"
        )
        await delete_cluster_streams(js, config.stream)
        await asyncio.sleep(config.replies_duplicate_window + 0.5)
        await restore_from(nc, store, cluster_ref(config), spool=tmp_path / "s", backup=manifest.id)
        routing = await js.key_value(routing_bucket(config.stream))
        marker = RestoreMarker.decode((await routing.get(MARKER_KEY)).value)
        assert marker is not None
        assert marker.messages_last_seq == count
        # the intake's messages came back pending: it sees every one of them again
        intake_info = await js.consumer_info(config.stream, "surge-intake")
        assert intake_info.num_pending == count

        after = await _publish(js, config, 5, "b")
        intake = _intake(nc, config)
        await intake.start()
        try:
            await wait_until(lambda: _intake_done(js, config), within=60)
        finally:
            await intake.stop()
        replies = await _replies(js, config)
        answered = {f"a-{i}" for i in range(count)} | {f"b-{i}" for i in range(5)}
        assert set(replies) == answered, "every conversation is acknowledged"
        assert set(replies.values()) == {1}, f"answered twice: {replies}"
        assert len(before | after) == count + 5
    finally:
        await nc.close()


async def _intake_done(js: Any, config: PipelineConfig) -> bool:
    info = await js.consumer_info(config.stream, "surge-intake")
    return info.num_pending == 0 and info.num_ack_pending == 0
