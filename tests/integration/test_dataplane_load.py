"""`surge load` against real workers: open-loop arrivals, end-to-end latency per priority
from the enqueue-time header, and trace replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.dataplane_support import (
    provisioned,
    running_worker,
    unique_pipeline,
    worker_settings,
)

from surge_workers.contract import Priority
from surge_workers.handlers import noop
from surge_workers.load import LoadSpec, Target, arrivals, load_trace, run_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_surge_profile_is_delivered_and_latency_recorded_per_priority(nats_url: str) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_url, config)
    await nc.close()
    target = Target(config.stream, config.subject_prefix, config.partitions)
    spec = LoadSpec(profile="surge", rate=150, duration=3, surge_factor=3, seed=11)
    expected = list(arrivals(spec))
    settings = worker_settings(config, completions=True, concurrency=8)
    async with running_worker(nats_url, settings, noop):
        report = await run_load(nats_url, target, expected, settle=5)

    summary = report.as_dict()["priorities"]
    assert sum(p["sent"] for p in summary.values()) == len(expected)
    assert report.errors == 0
    for priority in Priority:
        per = summary[priority.value]
        assert per["accepted"] == per["sent"] > 0
        assert per["completed"] == per["sent"]
        assert 0 <= per["p50"] <= per["p99"] < 2.0
    assert report.behind_schedule_max < 0.5  # the generator kept its open-loop schedule


async def test_trace_replay_follows_the_csv(nats_url: str, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "t,priority,conversation_id,tenant\n"
        "0.0,critical,c1,acme\n0.1,bulk,c2,acme\n0.2,normal,c1,acme\n0.25,normal,c3,globex\n"
    )
    report = await run_load(
        nats_url,
        Target(config.stream, config.subject_prefix, config.partitions),
        load_trace(trace),
        settle=0,
    )
    stored = (await js.stream_info(config.stream)).state.messages
    await nc.close()

    sent = {p.value: r.sent for p, r in report.priorities.items()}
    assert sent == {"critical": 1, "normal": 2, "bulk": 1}
    assert stored == 4
    assert report.duration >= 0.25
