"""Faults of NATS itself, under the real data plane.

Both run the configuration the operator generates for a managed region (three servers,
per-role users, `sync_interval: always`, an R3 stream) on loopback with `LocalNatsCluster`,
and hit the stream leader's server a third of the way through the traffic:

- `r3_server_kill`: SIGKILL; it comes back on its store a few seconds later, as its pod
  would.
- `r3_server_freeze`: SIGSTOP for longer than a Raft election takes, then SIGCONT. A
  frozen leader is the nastier fault: its TCP connections stay open, so clients and peers
  learn nothing until timeouts fire, and it wakes up still believing it leads.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from surge_operator.api import parse_spec
from surge_operator.chaos.dataplane import FAST, Plane, connect, run_plane
from surge_operator.chaos.result import Result
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.contract import PRIORITIES

PASSWORDS = Passwords({role: f"chaos-{role.value}" for role in Role})


def _region() -> BuildContext:
    spec = {
        "regions": [{"name": "east", "role": "primary", "nats": {"managed": {"servers": 3}}}],
        "stream": {"partitions": 4, "replicas": 3},
    }
    return BuildContext(name="chaos", namespace="chaos", uid="u", spec=parse_spec(spec))


def _auth(role: Role) -> dict[str, str]:
    return {"user": role.value, "password": PASSWORDS[role]}


async def _leader_index(cluster: LocalNatsCluster, stream: str) -> int:
    nc = await connect(cluster.urls, **_auth(Role.OPERATOR))
    try:
        info = await nc.jetstream(timeout=5.0).stream_info(stream)
    finally:
        await nc.close()
    leader = info.cluster.leader if info.cluster else None
    return next(i for i in range(len(cluster.servers)) if cluster.server_name(i) == leader)


#: Longer than a JetStream Raft election on a loaded machine (4 to 9 s timeouts, and a split
#: vote starts another round), so the other two must elect a leader without it.
FREEZE_S = 12.0

#: What a fault does to the stream leader's server (its index): recovery runs as a task
#: of the plane; returns what was done ("killed", "frozen") for the printed notes.
Fault = Callable[[LocalNatsCluster, int, Plane, str], str]


def _kill(cluster: LocalNatsCluster, victim: int, plane: Plane, stream: str) -> str:
    cluster.servers[victim].kill()

    async def back() -> None:
        await asyncio.sleep(3.0)
        started = time.monotonic()
        await asyncio.to_thread(cluster.servers[victim].start, 30.0)
        await asyncio.to_thread(cluster.wait_healthy, 120.0)
        plane.notes["server_back_healthy_s"] = round(time.monotonic() - started, 2)

    plane.tasks.append(asyncio.create_task(back()))
    return "killed"


def _freeze(cluster: LocalNatsCluster, victim: int, plane: Plane, stream: str) -> str:
    process = cluster.servers[victim].process
    assert process is not None  # a server of a running cluster
    process.send_signal(signal.SIGSTOP)
    plane.notes["frozen_s"] = FREEZE_S

    async def thaw() -> None:
        try:
            await asyncio.sleep(FREEZE_S)
        finally:  # never leave a stopped process behind, whatever ends the run
            process.send_signal(signal.SIGCONT)
        started = time.monotonic()
        await asyncio.to_thread(cluster.wait_healthy, 120.0)
        plane.notes["server_back_healthy_s"] = round(time.monotonic() - started, 2)
        plane.notes["leader_after"] = cluster.server_name(await _leader_index(cluster, stream))

    plane.tasks.append(asyncio.create_task(thaw()))
    return "frozen"


async def r3_server_kill(count: int) -> Result:
    return await _r3_scenario("nats-r3-server-kill-9", count, _kill)


async def r3_server_freeze(count: int) -> Result:
    return await _r3_scenario("nats-r3-server-sigstop", count, _freeze)


async def _r3_scenario(name: str, count: int, hit: Fault) -> Result:
    ctx = _region()
    pipeline = replace(
        pipeline_config(ctx.stream, ctx.spec),
        policies=dict.fromkeys(PRIORITIES, FAST),
        composer=False,
        replies_max_bytes=1 << 20,
    )
    role_env = {
        role.value: {"SURGE_NATS_USER": role.value, "SURGE_NATS_PASSWORD": PASSWORDS[role]}
        for role in (Role.WORKER, Role.GATEWAY)
    }
    # The lame-duck grace period only matters for graceful stops; nats-server wants >= 1 s.
    overrides = {"lame_duck_grace_period": "1s"}
    with tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp:
        config = server_config(ctx, ctx.spec.regions[0], PASSWORDS)
        with LocalNatsCluster(
            config, 3, name="east", root=Path(tmp) / "nats", overrides=overrides
        ) as cluster:

            async def fault(plane: Plane, i: int) -> None:
                if i != count // 3:
                    return
                victim = await _leader_index(cluster, pipeline.stream)
                plane.mark_fault()
                done = hit(cluster, victim, plane, pipeline.stream)
                plane.notes[done] = f"{cluster.server_name(victim)} (stream leader)"

            return await run_plane(
                name,
                urls=cluster.urls,
                root=Path(tmp) / "stage",
                count=count,
                rate=60.0,
                fault=fault,
                pipeline=pipeline,
                auth=_auth(Role.OPERATOR),
                role_env=role_env,
            )
