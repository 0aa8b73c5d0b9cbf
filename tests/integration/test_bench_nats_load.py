"""The in-pod half of `surge bench nats` on Kubernetes (`python3 -m
surge_operator.natsbench.load`), run as the bench pod runs it: NATS and the token from its
environment, the gateway and worker as their own processes on a real nats-server. It must
print a rate only once the worker's consumer has acknowledged every message."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.unit.surge_operator.resources.nats.nats_support import managed_ctx

from surge_operator.natsbench.load import parse_result
from surge_operator.natsbench.loopback import TENANT, TOKEN, surge_processes
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 1_200


async def test_the_in_pod_run_reports_only_after_every_message_is_acknowledged(
    tmp_path: Path,
) -> None:
    ctx = managed_ctx(servers=1)
    passwords = Passwords({role: f"pw-{role.value}" for role in Role})
    config = server_config(ctx, ctx.spec.regions[0], passwords)
    with LocalNatsCluster(config, 1, name="east", root=tmp_path) as cluster:
        async with surge_processes(ctx, cluster.urls, passwords) as surge:
            env = {
                **os.environ,
                "NATS_URL": ",".join(cluster.urls),
                "NATS_USER": Role.OPERATOR.value,
                "NATS_PASSWORD": passwords[Role.OPERATOR],
                "SURGE_BENCH_TOKEN": TOKEN,
            }
            # the module's own argument list, as load_args builds it for the pod
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "surge_operator.natsbench.load",
                "--gateway", surge.gateway,
                "--tenant", TENANT,
                "--stream", surge.stream,
                "--consumer", surge.consumer,
                "--messages", str(MESSAGES),
                "--size", "256",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            # With the worker stopped nothing can be acknowledged, so the run must not end
            # (posting 1,200 messages takes well under a second here).
            os.kill(surge.worker_pid, signal.SIGSTOP)
            try:
                finished = asyncio.ensure_future(run.wait())
                done, _ = await asyncio.wait({finished}, timeout=5)
                assert not done, "the run reported before the worker acknowledged anything"
            finally:
                os.kill(surge.worker_pid, signal.SIGCONT)
            out, _ = await asyncio.wait_for(run.communicate(), timeout=120)
            text = out.decode()
            assert run.returncode == 0, text
            assert parse_result(text) > 0
            stream = await surge.js.stream_info(surge.stream)
            consumer = await surge.js.consumer_info(surge.stream, surge.consumer)
    # The run purged the stream first, so exactly its messages are there, all acknowledged.
    assert stream.state.messages == MESSAGES
    assert consumer.ack_floor.stream_seq == stream.state.last_seq
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
