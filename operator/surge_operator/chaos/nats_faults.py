"""Faults of NATS itself, under the real data plane.

`r3_server_kill`: the configuration the operator generates for a managed region (three
servers, per-role users, `sync_interval: always`, an R3 stream), run on loopback by
`LocalNatsCluster`; the stream leader's server gets SIGKILL in the middle of the traffic
and comes back on its store a few seconds later, as its pod would.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
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


async def r3_server_kill(count: int) -> Result:
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
                cluster.servers[victim].kill()
                plane.notes["killed"] = f"{cluster.server_name(victim)} (stream leader)"

                async def back() -> None:
                    await asyncio.sleep(3.0)
                    started = time.monotonic()
                    await asyncio.to_thread(cluster.servers[victim].start, 30.0)
                    await asyncio.to_thread(cluster.wait_healthy, 120.0)
                    plane.notes["server_back_healthy_s"] = round(time.monotonic() - started, 2)

                plane.tasks.append(asyncio.create_task(back()))

            return await run_plane(
                "nats-r3-server-kill-9",
                urls=cluster.urls,
                root=Path(tmp) / "stage",
                count=count,
                rate=60.0,
                fault=fault,
                pipeline=pipeline,
                auth=_auth(Role.OPERATOR),
                role_env=role_env,
            )
