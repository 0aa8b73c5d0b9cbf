"""`nats bench` (natscli, built by `make natscli`) against the generated configuration:
the parser reads a real rate from the real tool."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.surge_operator.resources.nats.nats_support import managed_ctx

from surge_operator.natsbench.natscli import (
    loopback_command,
    natscli,
    run_nats_bench,
    run_nats_bench_end_to_end,
)
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _streams(nats: list[str]) -> list[str]:
    out = subprocess.run([*nats, "stream", "ls", "--names"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[list[str]]:
    """natscli's command against one server of the generated config, as the operator."""
    ctx = managed_ctx(servers=1)
    passwords = Passwords({role: f"pw-{role.value}" for role in Role})
    config = server_config(ctx, ctx.spec.regions[0], passwords)
    with LocalNatsCluster(config, 1, name="east", root=tmp_path) as cluster:
        yield loopback_command(
            natscli(), cluster.urls[0], Role.OPERATOR.value, passwords[Role.OPERATOR]
        )


def test_nats_bench_publishes_to_an_r1_stream_on_the_generated_config(nats: list[str]) -> None:
    rate = run_nats_bench(nats, replicas=1, messages=300, size=256)
    assert rate > 0
    assert _streams(nats) == []  # the row deletes what it made


def test_nats_bench_end_to_end_consumes_what_it_publishes(nats: list[str]) -> None:
    # A consumer short of its --msgs never exits: the call raises on its timeout instead.
    rate = run_nats_bench_end_to_end(nats, messages=400, size=256, replicas=1)
    assert rate > 0
    assert _streams(nats) == []
