"""`surge bench autoscale --live` on a short profile: the real engine, reading a real
nats-server and Prometheus, actually changes the number of real worker processes, and
the messages sent through the real gateway are served and scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from surge_operator.livebench.run import (
    LiveOptions,
    deciders,
    live_arrivals,
    live_policy,
    run_live_policy,
)
from surge_operator.localprom import PrometheusServer
from surge_operator.policy.types import PRIORITY_ORDER
from surge_workers.natsserver import NatsServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(240)
async def test_the_engine_scales_real_workers_through_a_surge(
    nats_server: NatsServer, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    # flash-surge compressed 23x: 30 s, 10x from about second 3.
    options = LiveOptions(speedup=23, peak_rate=60.0, max_replicas=6)
    arrivals = live_arrivals(options)
    policy = live_policy(arrivals, options)
    figures, replay, startups, handling = await run_live_policy(
        "surge",
        deciders(policy)["surge"],
        arrivals,
        policy,
        options,
        nats_url=nats_server.url,
        prometheus=prometheus,
        workdir=tmp_path,
    )
    # The worker count really changed: more processes started than the opening needed.
    assert figures.max_replicas > 1
    assert len(startups) >= figures.max_replicas
    # Every write was accepted, or is counted as refused and never served.
    assert replay.errors == 0
    accepted = sum(len(replay.priorities[p].accepted) for p in PRIORITY_ORDER)
    assert accepted + figures.refused == replay.offered
    # What the gateway accepted was served by the workers (a few may still be queued).
    started = sum(len(replay.priorities[p].started) for p in PRIORITY_ORDER)
    assert started >= 0.9 * accepted
    assert figures.replica_seconds > 0
    # The workers' own histogram gave the handling time: the 100 ms sleep and a store.
    assert handling >= options.work_ms / 1000
