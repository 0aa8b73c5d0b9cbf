"""Power loss under real nats-servers whose JetStream stores sit on the lazy filesystem.

Each store directory is a FUSE mount (lazyfs_mount.py) that keeps written data in memory
until the file is fsynced, as a disk's volatile cache and the kernel's page cache do. The
client publishes ids m0, m1, ... (conversations of 7) to Surge's pipeline and records each
PubAck: "accepted". With no worker running yet, the backlog is exactly what the store must
keep. Then the power goes, for every server at once: each nats-server gets SIGKILL and its
filesystem daemon with it, so everything written but never fsynced is gone. The servers
restart on what was persisted; the client goes on (recovery_s: from the crash to the first
PubAck after it), a worker drains the critical consumer, and `checker.check` compares by id.

    power-loss-fsync-always      one server, `sync_interval: always` (fsync before every
                                 PubAck): nothing accepted may be lost
    power-loss-fsync-lazy        one server, nats-server's default (fsync every 2 minutes):
                                 the checker must see a loss, or the scenario proves nothing
    power-loss-r3-fsync-always   three servers on the operator's generated configuration,
                                 R3 stream: the managed default; nothing may be lost
    power-loss-r3-fsync-lazy     the same with `syncInterval: 2m`: replicas do not help
                                 when every replica loses power

The crash comes right after a PubAck, with no publish in flight, so the lazy loss does
not depend on timing: nothing fsyncs within the first two minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient

from surge_operator.api import parse_spec
from surge_operator.chaos.checker import Effect, check
from surge_operator.chaos.lazyfs_mount import LazyMount, LazyMountError, fuse_missing
from surge_operator.chaos.result import Result
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.resources.context import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords
from surge_operator.resources.nats.config import server_config as server_config_for
from surge_workers import provision
from surge_workers.contract import Header, Priority, consumer_name, message_subject
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(
    stream="SURGE_POWER", subject_prefix="power", partitions=4, duplicate_window=120.0
)
CONVERSATIONS = 7
POSITION = "Surge-Chaos-Position"
CONVERSATION = "Surge-Chaos-Conversation"


def server_config(*, sync_always: bool) -> str:
    """JetStream's fsync policy; the lazy case is nats-server's default (no setting)."""
    return "jetstream { sync_interval: always }\n" if sync_always else ""


@dataclass
class _Site:
    """The servers, each with its store on its own lazy filesystem, and how to reach them."""

    servers: list[NatsServer]
    mounts: list[LazyMount]
    pipeline: PipelineConfig
    start: Callable[[], object]
    credentials: tuple[str, str] | None = None

    async def connect(self) -> NatsClient:
        user, password = self.credentials or (None, None)
        return await nats.connect(
            servers=[s.url for s in self.servers],
            user=user,
            password=password,
            allow_reconnect=False,
            connect_timeout=2,
        )


@dataclass
class _Run:
    site: _Site
    accepted: set[str] = field(default_factory=set)
    absorbed: int = 0
    effects: list[Effect] = field(default_factory=list)


def _single(root: Path, *, sync_always: bool) -> _Site:
    conf = root / "server.conf"
    conf.write_text(server_config(sync_always=sync_always))
    # NatsServer puts its store at <store_dir>/jetstream (the mount) and its log beside.
    server = NatsServer(store_dir=root / "server", extra_args=("-c", str(conf)))
    mount = LazyMount(root / "disk", root / "server" / "jetstream")
    return _Site([server], [mount], PIPELINE, start=lambda: server.start(30.0))


def _cluster(root: Path, *, sync_always: bool) -> _Site:
    """Three servers running the operator's generated configuration (R3 stream)."""
    spec = {
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {"managed": {"syncInterval": "always" if sync_always else "2m"}},
            }
        ],
        "stream": {"name": "SURGE_POWER", "subjectPrefix": "power", "partitions": 4},
    }
    ctx = BuildContext(name="power", namespace="chaos", uid="power", spec=parse_spec(spec))
    passwords = Passwords({role: secrets.token_hex(12) for role in Role})
    config = server_config_for(ctx, ctx.spec.regions[0], passwords)
    cluster = LocalNatsCluster(
        config, 3, name="power", root=root, overrides={"lame_duck_grace_period": "1s"}
    )
    mounts = [
        LazyMount(root / f"disk-{i}", server.store_dir / "jetstream")
        for i, server in enumerate(cluster.servers)
    ]
    return _Site(
        cluster.servers,
        mounts,
        pipeline_config(ctx.stream, ctx.spec),
        start=cluster.start,
        credentials=(Role.OPERATOR.value, passwords[Role.OPERATOR]),
    )


async def _publish(run: _Run, ids: range, *, within: float = 60.0) -> float:
    """At-least-once, one at a time: each id is retried (same id) until a PubAck. Returns
    when the first PubAck came (monotonic)."""
    client: NatsClient | None = None
    first_ack: float | None = None
    try:
        for i in ids:
            msg_id, conversation = f"m{i}", f"c{i % CONVERSATIONS}"
            pipeline = run.site.pipeline
            subject = message_subject(
                pipeline.subject_prefix,
                Priority.CRITICAL,
                conversation,
                pipeline.partitions,
                tenant="",
            )
            headers = {
                Header.MSG_ID: msg_id,
                CONVERSATION: conversation,
                POSITION: str(i // CONVERSATIONS),
            }
            deadline = time.monotonic() + within
            while True:
                try:
                    client = client or await run.site.connect()
                    ack = await client.jetstream(timeout=5.0).publish(
                        subject, b"x", headers=headers
                    )
                    break
                except (nats.errors.Error, OSError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    if client is not None:
                        with contextlib.suppress(Exception):
                            await client.close()
                    client = None
                    await asyncio.sleep(0.1)
            if ack.duplicate:
                run.absorbed += 1  # stored before, its PubAck lost: the server knew the id
            run.accepted.add(msg_id)
            first_ack = first_ack or time.monotonic()
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
    assert first_ack is not None, "no ids to publish"
    return first_ack


# nats-py raises its own TimeoutError and asyncio's (both are this one), and a 503 while an
# R3 consumer elects its leader.
_NOT_YET = (TimeoutError, nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError)


async def _drain(run: _Run, *, within: float = 120.0) -> None:
    """One worker on the critical consumer until it has nothing pending: one effect per id,
    a redelivered done id is a duplicate absorbed."""
    client = await run.site.connect()
    done: set[str] = set()
    deadline = time.monotonic() + within
    try:
        js = client.jetstream(timeout=5.0)
        sub = await js.pull_subscribe_bind(
            consumer_name(Priority.CRITICAL), stream=run.site.pipeline.stream
        )
        while time.monotonic() < deadline:
            try:
                batch = await sub.fetch(100, timeout=1.0)
            except _NOT_YET:
                # Nothing came, or (R3) the consumer has no leader yet after the restart.
                with contextlib.suppress(*_NOT_YET):
                    info = await sub.consumer_info()
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        return
                await asyncio.sleep(0.2)
                continue
            for msg in batch:
                headers = msg.headers or {}
                msg_id = headers.get(Header.MSG_ID, "")
                if msg_id in done:
                    run.absorbed += 1
                else:
                    done.add(msg_id)
                    conversation = headers.get(CONVERSATION, "")
                    position = int(headers.get(POSITION, "0"))
                    run.effects.append(Effect(msg_id, conversation, position))
                # An ack lost to a timeout is redelivered after the ack wait and absorbed.
                with contextlib.suppress(TimeoutError):
                    await msg.ack_sync(timeout=5.0)
        raise TimeoutError(f"the consumer still had messages pending after {within} s")
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def power_loss(name: str, *, sync_always: bool, count: int, servers: int = 1) -> Result:
    """Publish two thirds of `count`, cut the power of every server at once, restart,
    publish the rest, drain, check."""
    missing = fuse_missing()
    if missing is not None:
        raise LazyMountError(f"{name} needs the lazy filesystem: {missing}")
    with tempfile.TemporaryDirectory(prefix="surge-powerloss-") as tmp:
        build = _single if servers == 1 else _cluster
        site = build(Path(tmp), sync_always=sync_always)
        run = _Run(site)
        try:
            for mount in site.mounts:
                await asyncio.to_thread(mount.mount)
            await asyncio.to_thread(site.start)
            client = await site.connect()
            await provision.provision_pipeline(client.jetstream(timeout=10.0), site.pipeline)
            await client.close()
            # A cluster that has run for a while has its streams and consumers on disk: the
            # kernel writes dirty pages back after 30 s even unsynced. Only what was written
            # in the last moments before the crash is at stake, as in Jepsen's runs.
            for mount in site.mounts:
                await asyncio.to_thread(mount.writeback)
            crash_at = count * 2 // 3
            await _publish(run, range(crash_at))
            fault_at = time.monotonic()
            for server in site.servers:
                await asyncio.to_thread(server.kill)
            unsynced = 0
            for mount in site.mounts:
                unsynced += await asyncio.to_thread(mount.dirty)
                await asyncio.to_thread(mount.power_loss)
            for mount in site.mounts:
                await asyncio.to_thread(mount.mount)
            await asyncio.to_thread(site.start)
            recovery = await _publish(run, range(crash_at, count)) - fault_at
            await _drain(run)
        finally:
            for server in site.servers:
                await asyncio.to_thread(server.kill)
            for mount in site.mounts:
                await asyncio.to_thread(mount.unmount)
    verdict = check(run.accepted, run.effects, run.absorbed)
    return Result(
        name,
        verdict,
        recovery,
        rpo=None,
        extra={"servers": servers, "unsynced_bytes_at_crash": unsynced},
        expects_loss=not sync_always,
    )


async def fsync_always(count: int) -> Result:
    return await power_loss("power-loss-fsync-always", sync_always=True, count=count)


async def fsync_lazy(count: int) -> Result:
    return await power_loss("power-loss-fsync-lazy", sync_always=False, count=count)


async def r3_fsync_always(count: int) -> Result:
    return await power_loss("power-loss-r3-fsync-always", sync_always=True, count=count, servers=3)


async def r3_fsync_lazy(count: int) -> Result:
    return await power_loss("power-loss-r3-fsync-lazy", sync_always=False, count=count, servers=3)
