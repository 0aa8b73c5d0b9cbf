"""A managed region on loopback for operations tests: the operator's generated config on
three real nats-servers, the `natsops` observe/plan code, and the two things a pod
restart does (lame duck via `nats-server --signal ldm=<pid>`, then start again on the
same store), plus a publisher that records exactly what was acknowledged and when."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from surge_operator.api import parse_spec
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.natsops import observe
from surge_operator.natsops.plan import PodView, RegionObservation, Step
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.contract import Header, Priority, message_subject
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

PASSWORDS = Passwords({role: f"secret-{role.value}" for role in Role})
# Grace period shortened for tests (pods: 10 s); nats-server refuses a lame-duck duration
# under 30 s, so that stays.
P = TypeVar("P", bound="Publishing")

TEST_OVERRIDES = {"lame_duck_grace_period": "1s"}


def region_ctx(servers: int = 3, **stream: object) -> BuildContext:
    spec = {
        "regions": [{"name": "east", "role": "primary", "nats": {"managed": {"servers": servers}}}],
        "stream": {"partitions": 4, **stream},
    }
    return BuildContext(name="support", namespace="team-a", uid="u", spec=parse_spec(spec))


@contextlib.contextmanager
def managed_region(ctx: BuildContext, root: Path, servers: int = 3) -> Iterator[LocalNatsCluster]:
    config = server_config(ctx, ctx.spec.regions[0], PASSWORDS)
    # durations must stay bare tokens; conf.Raw keeps them unquoted

    overrides = dict(TEST_OVERRIDES)
    with LocalNatsCluster(config, servers, name="east", root=root, overrides=overrides) as c:
        yield c


async def connect(cluster: LocalNatsCluster, role: Role) -> Client:
    return await nats.connect(
        servers=cluster.urls,
        user=role.value,
        password=PASSWORDS[role],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
    )


async def provisioned(cluster: LocalNatsCluster, ctx: BuildContext) -> PipelineConfig:
    nc = await connect(cluster, Role.OPERATOR)
    try:
        config = pipeline_config(ctx.stream, ctx.spec)
        await provision_pipeline(nc.jetstream(timeout=10), config)
        return config
    finally:
        await nc.close()


def lame_duck(cluster: LocalNatsCluster, i: int) -> None:
    """What the preStop hook does, then wait for the process to leave."""
    pid_file = cluster.servers[i].store_dir / "nats.pid"
    subprocess.run(
        [cluster.servers[i].binary, "--signal", f"ldm={pid_file}"], check=True, timeout=10
    )
    process = cluster.servers[i].process
    assert process is not None
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        cluster.servers[i].kill()


@dataclass(kw_only=True)
class Publishing(abc.ABC):
    """What both publishers record while `run` goes on until `stop` is set: the ids
    acknowledged, when, and how many attempts failed."""

    acked: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failures: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @abc.abstractmethod
    async def run(self) -> None: ...

    def longest_gap(self) -> float:
        """Longest time without an acknowledgement: the unavailability clients saw."""
        return max((b - a for a, b in itertools.pairwise(self.ack_times)), default=0.0)


@dataclass
class Publisher(Publishing):
    """Publishes numbered messages as fast as acks come back; retries a message until it
    is acknowledged (same Nats-Msg-Id, so a retry never duplicates)."""

    js: JetStreamContext
    config: PipelineConfig

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            msg_id = f"m{n}"
            subject = message_subject(
                self.config.subject_prefix, Priority.NORMAL, f"c{n % 7}", 4, tenant="acme"
            )
            headers = {Header.MSG_ID: msg_id, Header.CONVERSATION: f"c{n % 7}"}
            headers[Header.TENANT] = "acme"
            while not self.stop.is_set():
                try:
                    await self.js.publish(subject, b"{}", headers=headers, timeout=2)
                except (nats.errors.Error, TimeoutError):
                    self.failures += 1
                    await asyncio.sleep(0.05)
                    continue
                self.acked.append(msg_id)
                self.ack_times.append(time.monotonic())
                break
            n += 1


@dataclass
class GatewayPublisher(Publishing):
    """What `surge-gateway` does: its own connection (`runtime.connect`, SurgeClient) and
    JetStreamPublisher, batches of `batch` numbered messages, a batch retried until every
    message in it is acknowledged (same Nats-Msg-Ids). `ack_times` are when batches came
    back fully acknowledged: the gaps are what the gateway's clients would wait."""

    nc: Client
    config: PipelineConfig
    batch: int = 10

    async def run(self) -> None:
        from surge_workers.gateway import JetStreamPublisher

        publisher = JetStreamPublisher(self.nc)
        n = 0
        while not self.stop.is_set():
            ids = [f"g{n + i}" for i in range(self.batch)]
            batch = [
                (
                    message_subject(
                        self.config.subject_prefix, Priority.NORMAL, f"g{k % 7}", 4, tenant="acme"
                    ),
                    b"{}",
                    {
                        Header.MSG_ID: f"g{k}",
                        Header.CONVERSATION: f"g{k % 7}",
                        Header.TENANT: "acme",
                    },
                )
                for k in range(n, n + self.batch)
            ]
            while not self.stop.is_set():
                try:
                    await publisher.publish(batch)
                except (nats.errors.Error, TimeoutError):
                    self.failures += 1
                    await asyncio.sleep(0.05)
                    continue
                self.acked += ids
                self.ack_times.append(time.monotonic())
                break
            n += self.batch
        self.resent = publisher.resent


async def gateway_connection(cluster: LocalNatsCluster) -> Client:
    """The gateway's own connect (SurgeClient, its reconnect settings) as the gateway user."""
    from surge_workers.logs import get_logger
    from surge_workers.runtime import connect as runtime_connect
    from surge_workers.settings import NatsSettings

    settings = NatsSettings(
        servers=tuple(cluster.urls), user=Role.GATEWAY.value, password=PASSWORDS[Role.GATEWAY]
    )
    return await runtime_connect(settings, "test-gateway", get_logger("test"))


@contextlib.asynccontextmanager
async def running(publisher: P) -> AsyncIterator[P]:
    """`publisher` publishing in the background for the block's duration."""
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        publisher.stop.set()
        await task


@dataclass
class LeaderWatch:
    """Samples the stream leader every 100 ms; the longest leaderless stretch."""

    longest: float = 0.0
    _since: float | None = None

    def sample(self, leader: str | None, now: float) -> None:
        if leader is None:
            self._since = self._since if self._since is not None else now
            self.longest = max(self.longest, now - self._since)
        else:
            self._since = None


async def observation(
    sys_nc: Client,
    cluster: LocalNatsCluster,
    revisions: dict[str, str],
    update_revision: str,
) -> RegionObservation:
    servers = await observe.servers(sys_nc)
    js = await observe.jetstream(sys_nc)
    pods = [
        PodView(cluster.server_name(i), revisions[cluster.server_name(i)], cluster.healthy(i))
        for i in range(len(cluster.servers))
    ]
    return RegionObservation(
        desired_servers=len(cluster.servers),
        statefulset_replicas=len(cluster.servers),
        update_revision=update_revision,
        pods=pods,
        servers=servers,
        streams=js.streams,
        meta_leader=js.meta_leader,
        meta_peers=js.meta_peers,
    )


async def wait_step(step: Step) -> None:  # for symmetry in tests: nothing to do but wait
    await asyncio.sleep(0.2 if step.kind == "Wait" else 0)
