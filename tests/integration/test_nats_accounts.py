"""Least privilege inside NATS: the operator's generated accounts on a real nats-server.

The server runs the configuration the operator renders for a managed region (through
LocalNatsCluster, which only moves ports and paths to loopback); each role connects with
its own user, as the pods do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from tests.integration.dataplane_support import Recorder, publish, worker_settings
from tests.integration.waits import wait_until

from surge_operator.api import parse_spec
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.consumer import Worker
from surge_workers.contract import routing_bucket, transcripts_bucket
from surge_workers.handlers import route_and_store
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline
from surge_workers.transcripts import TranscriptEntry, read_transcript, store_entry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORDS = Passwords({role: f"secret-{role.value}" for role in Role})
SPEC = {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {"servers": 1}}}]}


@pytest.fixture(scope="module")
def ctx() -> BuildContext:
    return BuildContext(name="support", namespace="team-a", uid="u", spec=parse_spec(SPEC))


@pytest.fixture(scope="module")
def server(ctx: BuildContext, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = server_config(ctx, ctx.spec.regions[0], PASSWORDS)
    root = tmp_path_factory.mktemp("accounts")
    with LocalNatsCluster(config, 1, name="east", root=root) as cluster:
        yield cluster.urls[0]


@contextlib.asynccontextmanager
async def connected(url: str, role: Role) -> AsyncIterator[Client]:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        url, user=role.value, password=PASSWORDS[role], error_cb=on_error, allow_reconnect=False
    )
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def pipeline(ctx: BuildContext, server: str) -> PipelineConfig:
    config = pipeline_config(ctx.stream, ctx.spec)
    async with connected(server, Role.OPERATOR) as nc:
        await provision_pipeline(nc.jetstream(), config)
        await nc.jetstream().purge_stream(config.stream)
    return config


async def stream_messages(url: str, stream: str) -> int:
    async with connected(url, Role.OPERATOR) as nc:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)


async def test_gateway_publishes_and_worker_processes_with_their_own_users(
    server: str, pipeline: PipelineConfig
) -> None:
    async with connected(server, Role.GATEWAY) as gw:
        for i in range(5):
            await publish(gw.jetstream(), pipeline, msg_id=f"m{i}", conversation="c1")
    recorder = Recorder(route_and_store)
    settings = worker_settings(pipeline)
    async with connected(server, Role.WORKER) as nc:
        worker = Worker(nc, settings, recorder, WorkerMetrics(), log=get_logger("accounts"))
        await worker.start()
        try:
            await wait_until(lambda: _all_called(recorder, 5), within=20)
        finally:
            await worker.drain(grace=5)
    async with connected(server, Role.OPERATOR) as nc:
        stored = await read_transcript(nc.jetstream(), pipeline.stream, "acme", "c1")
    assert len(stored) == 5


async def _all_called(recorder: Recorder, n: int) -> bool:
    return len({c[1] for c in recorder.calls}) >= n


async def test_worker_cannot_publish_to_the_ingest_subjects(
    server: str, pipeline: PipelineConfig
) -> None:
    before = await stream_messages(server, pipeline.stream)
    async with connected(server, Role.WORKER) as nc:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await publish(nc.jetstream(timeout=1), pipeline, msg_id="forged", conversation="c")
    assert await stream_messages(server, pipeline.stream) == before


async def test_gateway_reads_but_cannot_write_transcripts(
    server: str, pipeline: PipelineConfig
) -> None:
    """The transcript route reads as the gateway; forging an entry as the gateway fails."""
    entry = TranscriptEntry(
        msg_id="m1", seq=1, conversation_id="c9", tenant="acme", priority="normal",
        team="general", text="private", language=None, enqueued_at=None, stored_at=1.0,
    )  # fmt: skip
    async with connected(server, Role.OPERATOR) as nc:
        await store_entry(
            await nc.jetstream().key_value(transcripts_bucket(pipeline.stream)), entry
        )
    async with connected(server, Role.GATEWAY) as gw:
        js = gw.jetstream(timeout=1)
        assert await read_transcript(js, pipeline.stream, "acme", "c9", wait=2) == [entry]
        kv = await js.key_value(transcripts_bucket(pipeline.stream))
        forged = dataclasses.replace(entry, msg_id="m2", text="forged")
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await store_entry(kv, forged)
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await _read_key(js, routing_bucket(pipeline.stream), "anything")
    async with connected(server, Role.OPERATOR) as nc:
        stored = await read_transcript(nc.jetstream(), pipeline.stream, "acme", "c9", wait=2)
    assert stored == [entry]


async def test_users_client_may_only_publish(server: str, pipeline: PipelineConfig) -> None:
    async with connected(server, Role.CLIENT) as nc:
        js = nc.jetstream(timeout=1)
        seq = await publish(js, pipeline, msg_id=f"client-{time.time()}", conversation="c2")
        assert seq > 0
        with pytest.raises(nats.errors.Error):
            await _fetch_one(js, pipeline.stream, "surge-normal")
        with pytest.raises(nats.errors.Error):
            await js.delete_stream(pipeline.stream)


async def _read_key(js: JetStreamContext, bucket: str, key: str) -> bytes | None:
    kv = await js.key_value(bucket)
    entry = await kv.get(key)
    return entry.value


async def _fetch_one(js: JetStreamContext, stream: str, durable: str) -> None:
    sub = await js.pull_subscribe_bind(durable, stream=stream)
    await sub.fetch(1, timeout=1)


async def test_worker_composes_replies_and_gateway_streams_them_with_their_own_users(
    server: str, pipeline: PipelineConfig
) -> None:
    from surge_workers.composer import acknowledge
    from surge_workers.contract import DegradationState
    from surge_workers.intake import IntakeStage
    from surge_workers.replies import Reply, ReplyKind, publish_reply, replies_stream, reply_subject
    from surge_workers.reply_feed import reply_feed
    from surge_workers.templates import TemplateStore

    async with connected(server, Role.GATEWAY) as gw:
        await publish(gw.jetstream(), pipeline, msg_id="r0", conversation="c-replies")
    async with connected(server, Role.WORKER) as nc:
        intake = IntakeStage(
            nc,
            worker_settings(pipeline),
            acknowledge,
            TemplateStore(),
            log=get_logger("accounts"),
            state=DegradationState,
            service_time=lambda _: 0.0,
        )
        await intake.start()
        try:
            subject = reply_subject(pipeline.subject_prefix, "acme", "c-replies")

            async def acked() -> bool:
                async with (
                    connected(server, Role.GATEWAY) as reader,
                    reply_feed(
                        reader.jetstream(), replies_stream(pipeline.stream), subject
                    ) as feed,
                ):
                    return len(await feed.stored(wait=1.0)) >= 1

            await wait_until(acked, within=20)
        finally:
            await intake.stop()
    async with connected(server, Role.GATEWAY) as gw:
        agent = Reply(ReplyKind.AGENT, "acme", "c-replies", "a1", "on it", time.time())
        await publish_reply(gw.jetstream(), pipeline.subject_prefix, agent)
        async with reply_feed(gw.jetstream(), replies_stream(pipeline.stream), subject) as feed:
            kinds = [e.reply.kind for e in await feed.stored(wait=2.0) if e.reply]
    assert kinds == [ReplyKind.ACK, ReplyKind.AGENT]


async def test_backup_user_snapshots_and_restores_but_cannot_ingest_or_consume(
    server: str, pipeline: PipelineConfig, tmp_path: Path
) -> None:
    """The backup Job's own user: enough for a whole backup and restore, nothing else."""
    from surge_operator.backup.locations import open_store
    from surge_operator.backup.runner import ClusterRef, back_up, restore

    async with connected(server, Role.GATEWAY) as gw:
        for i in range(3):
            await publish(gw.jetstream(), pipeline, msg_id=f"b{i}", conversation="c3")
    store = open_store(f"dir:{tmp_path / 'pvc'}", {})
    ref = ClusterRef("team-a", "support", pipeline.stream, pipeline.subject_prefix)
    async with connected(server, Role.BACKUP) as nc:
        manifest = await back_up(nc, store, ref, spool=tmp_path / "s", nonce="abc123")
        assert manifest.parts[0].messages >= 3
        js = nc.jetstream(timeout=1)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await publish(js, pipeline, msg_id="forged-by-backup", conversation="c")
        with pytest.raises(nats.errors.Error):
            await _fetch_one(js, pipeline.stream, "surge-normal")
    async with connected(server, Role.OPERATOR) as nc:
        for part in manifest.parts:
            await nc.jetstream().delete_stream(part.stream)
    async with connected(server, Role.BACKUP) as nc:
        await restore(
            nc,
            store,
            source_namespace="team-a",
            source_name="support",
            backup=manifest.id,
            into=ref,
            spool=tmp_path / "s",
        )
    assert await stream_messages(server, pipeline.stream) == manifest.parts[0].messages


async def test_backup_user_restores_another_streams_backup_under_its_own_names(
    server: str, pipeline: PipelineConfig, tmp_path: Path
) -> None:
    """A renaming restore (staged bucket, mirror, promotion, marker) needs nothing more
    than the backup user of the cluster restored into."""
    from surge_operator.backup.locations import open_store
    from surge_operator.backup.manifest import backup_order
    from surge_operator.backup.runner import ClusterRef, back_up, restore
    from surge_workers.restored import MARKER_KEY, RestoreMarker

    old = dataclasses.replace(pipeline, stream="OLDSUPPORT")
    store = open_store(f"dir:{tmp_path / 'pvc'}", {})
    async with connected(server, Role.OPERATOR) as nc:
        js = nc.jetstream()
        for name, _ in backup_order(pipeline.stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await provision_pipeline(js, old)
        for i in range(3):
            await publish(js, old, msg_id=f"o{i}", conversation="c-old")
        await (await js.key_value(routing_bucket(old.stream))).put("c.old", b"billing")
        ref = ClusterRef("team-a", "old", old.stream, old.subject_prefix)
        await back_up(nc, store, ref, spool=tmp_path / "s", nonce="abc123")
        for name, _ in backup_order(old.stream):
            await js.delete_stream(name)
    into = ClusterRef("team-a", "support", pipeline.stream, pipeline.subject_prefix)
    async with connected(server, Role.BACKUP) as nc:
        await restore(
            nc,
            store,
            source_namespace="team-a",
            source_name="old",
            backup="latest",
            into=into,
            spool=tmp_path / "s",
        )
    assert await stream_messages(server, pipeline.stream) == 3
    async with connected(server, Role.WORKER) as nc:
        routing = await nc.jetstream().key_value(routing_bucket(pipeline.stream))
        assert (await routing.get("c.old")).value == b"billing"
        marker = RestoreMarker.decode((await routing.get(MARKER_KEY)).value)
        assert marker is not None
        assert marker.messages_last_seq == 3
