"""`surge bench nats --loopback`: the operator's generated configuration for a managed
region (3 servers, R3, the per-role accounts) run by LocalNatsCluster on loopback, twice
(fsync always and nats-server's default), with `surge-gateway` and `surge-worker` as their
own processes, as in their pods. No Kubernetes needed: the quick look at the same figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from surge_operator.api import parse_spec
from surge_operator.natsbench.load import drive
from surge_operator.natsbench.natscli import loopback_command, natscli
from surge_operator.natsbench.result import NatsBenchResult
from surge_operator.natsbench.rounds import Targets, measure
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.ownserver import start_own_server, stop
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.contract import Priority as WirePriority
from surge_workers.contract import consumer_name
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

#: the noop worker's in-flight window: enough that it never waits on a pull
WORKER_CONCURRENCY = 64
WORKER_PREFETCH = 1024
TENANT = "bench"
TOKEN = "bench-token"


def _ctx(sync_interval: str) -> BuildContext:
    spec = {
        "regions": [
            {
                "name": "bench",
                "role": "primary",
                "nats": {"managed": {"syncInterval": sync_interval}},
            }
        ],
        "stream": {"name": "SURGEBENCH", "subjectPrefix": "surgebench", "partitions": 16},
        "gateway": {"rateLimitPerTenant": 1e9},
    }
    return BuildContext(name="bench", namespace="bench", uid="bench", spec=parse_spec(spec))


@contextlib.contextmanager
def cluster(
    sync_interval: str, passwords: Passwords, root: Path
) -> Iterator[tuple[BuildContext, LocalNatsCluster]]:
    ctx = _ctx(sync_interval)
    config = server_config(ctx, ctx.spec.regions[0], passwords)
    overrides = {"max_payload": 8 * 1024 * 1024, "lame_duck_grace_period": "1s"}
    with LocalNatsCluster(
        config, 3, name=f"bench-{sync_interval}", root=root, overrides=overrides
    ) as c:
        yield ctx, c


def _process(main: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", f"from surge_workers.cli import {main}; {main}()"], env=env
    )


@dataclass(frozen=True)
class SurgeOnLoopback:
    """A provisioned, empty pipeline with its gateway and worker running."""

    gateway: str
    js: Any
    stream: str
    consumer: str
    worker_pid: int


@contextlib.asynccontextmanager
async def surge_processes(
    ctx: BuildContext, urls: list[str], passwords: Passwords
) -> AsyncIterator[SurgeOnLoopback]:
    """`surge-gateway` and `surge-worker` (each its own process, as in its pod) on the R3
    stream, provisioned and purged; stopped on the way out."""
    config: PipelineConfig = pipeline_config(ctx.stream, ctx.spec)
    op = await nats.connect(servers=urls, user="operator", password=passwords[Role.OPERATOR])
    js = op.jetstream(timeout=10)
    await provision_pipeline(js, config)
    await js.purge_stream(config.stream)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="surge-bench-nats-") as tmp:
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps({TENANT: [TOKEN]}))
        common = dict(os.environ)
        common.update(
            SURGE_NATS_URL=",".join(urls),
            SURGE_STREAM=config.stream,
            SURGE_SUBJECT_PREFIX=config.subject_prefix,
            SURGE_PARTITIONS=str(config.partitions),
            SURGE_LOG_LEVEL="error",
        )
        gateway = dict(common)
        gateway.update(
            SURGE_NATS_USER=Role.GATEWAY.value,
            SURGE_NATS_PASSWORD=passwords[Role.GATEWAY],
            SURGE_HTTP_HOST="127.0.0.1",
            SURGE_METRICS_PORT="0",
            SURGE_TOKENS_FILE=str(tokens),
            SURGE_RATE_LIMIT="0",
        )
        worker = dict(common)
        worker.update(
            SURGE_NATS_USER=Role.WORKER.value,
            SURGE_NATS_PASSWORD=passwords[Role.WORKER],
            SURGE_HANDLER="surge_workers.handlers:noop",
            SURGE_COMPOSER="none",
            SURGE_PRIORITIES="normal",
            SURGE_CONCURRENCY=str(WORKER_CONCURRENCY),
            SURGE_PREFETCH=str(WORKER_PREFETCH),
            SURGE_METRICS_HOST="127.0.0.1",
        )
        try:
            # Fresh ports, and the answer must come from our own child (ownserver).
            proc, port = await start_own_server(
                lambda p: _process("gateway_main", {**gateway, "SURGE_HTTP_PORT": str(p)}),
                "/readyz",
            )
            procs.append(proc)
            proc, _ = await start_own_server(
                lambda p: _process("worker_main", {**worker, "SURGE_METRICS_PORT": str(p)}),
                "/readyz",
            )
            procs.append(proc)
            yield SurgeOnLoopback(
                worker_pid=proc.pid,
                gateway=f"http://127.0.0.1:{port}",
                js=js,
                stream=config.stream,
                consumer=consumer_name(WirePriority.NORMAL),
            )
        finally:
            for proc in procs:
                stop(proc)
            await op.close()


async def surge_end_to_end(
    ctx: BuildContext, urls: list[str], passwords: Passwords, messages: int, size: int
) -> float:
    async with surge_processes(ctx, urls, passwords) as surge:
        return await drive(
            surge.gateway,
            TOKEN,
            TENANT,
            surge.js,
            stream=surge.stream,
            consumer=surge.consumer,
            messages=messages,
            size=size,
        )


def run_loopback(messages: int, size: int, rounds: int) -> NatsBenchResult:
    binary = natscli()
    passwords = Passwords({role: os.urandom(12).hex() for role in Role})
    result = NatsBenchResult(
        messages=messages,
        size=size,
        rounds=rounds,
        where="3 nats-servers on loopback per cluster (--loopback), generated config",
    )
    user, password = Role.OPERATOR.value, passwords[Role.OPERATOR]
    # Both clusters run at once, so every round measures each row back to back.
    with (
        tempfile.TemporaryDirectory(prefix="surge-bench-nats-") as tmp,
        cluster("always", passwords, Path(tmp) / "always") as (ctx, durable),
        cluster("2m", passwords, Path(tmp) / "lazy") as (_, lazy),
    ):
        targets = Targets(
            durable=loopback_command(binary, ",".join(durable.urls), user, password),
            lazy=loopback_command(binary, ",".join(lazy.urls), user, password),
            surge=lambda: asyncio.run(
                surge_end_to_end(ctx, durable.urls, passwords, messages, size)
            ),
        )
        measure(result, targets)
    result.notes.append(
        "nats bench: asynchronous publish (batches of 500), file storage; surge: 4 HTTP "
        "connections, batches of 500, one surge-gateway and one surge-worker process"
    )
    return result
