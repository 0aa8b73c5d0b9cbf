"""A recorded demo run: what the engine published is what the replay rebuilds."""

from __future__ import annotations

import json

import pytest

from surge_operator.demo.honesty import Honesty, Sample
from surge_operator.demo.record import run_record
from surge_operator.demo.replay import forecasts, replay_run
from surge_operator.demo.run import DemoOptions, DemoResult, DemoSummary
from surge_operator.engine import Tick
from surge_operator.policy.engine import EngineConfig, initial_state, step
from surge_operator.policy.types import PriorityMetrics, Snapshot
from surge_workers import contract
from surge_workers.contract import Priority

OFFSET = 1_700_000_000.0  # unix time at the loop's monotonic zero


def ticks() -> list[Tick]:
    options = DemoOptions()
    config = EngineConfig(policy=options.policy())
    state = initial_state(config)
    out = []
    for at, normal, ready in ((10.0, 40, 1), (11.0, 400, 1), (12.0, 900, 3)):
        snapshot = Snapshot(
            at=at,
            observed_at=at,
            priorities={
                Priority.CRITICAL: PriorityMetrics(backlog=2, arrival_rate=5.0),
                Priority.NORMAL: PriorityMetrics(backlog=normal, arrival_rate=150.0),
                Priority.BULK: PriorityMetrics(backlog=30, arrival_rate=20.0),
            },
            current_replicas=ready,
            ready_replicas=ready,
            completion_rate=40.0,
            waiting=normal,
        )
        plan, state = step(snapshot, config, state)
        out.append(Tick(snapshot=snapshot, plan=plan, ready=ready))
    return out


def result() -> DemoResult:
    honesty = Honesty(
        samples=[
            Sample("normal", 0.1, 0.12, "a", position=1, enqueued_at=OFFSET + 10.5),
            Sample("normal", 9.0, 12.0, "b", position=600, enqueued_at=OFFSET + 12.2),
        ]
    )
    summary = DemoSummary(
        reaction_s=None,
        sent=2,
        processed=2,
        lost=0,
        dead_letters=0,
        p95_wait_s={},
        max_backlog=900,
        max_replicas=3,
        duration_s=3.0,
    )
    return DemoResult(summary, ticks(), honesty, clock_offset=OFFSET)


def test_the_rebuilt_forecast_is_the_one_the_engine_published() -> None:
    record = json.loads(json.dumps(run_record(3, result())))
    rebuilt = forecasts(record["ticks"], DemoOptions().policy())
    for tick, published in zip(ticks(), rebuilt, strict=True):
        assert dict(published) == {
            contract.Priority(p.value): c for p, c in tick.plan.expected_wait.items()
        }


def test_a_record_re_judges_to_its_own_promises() -> None:
    record = json.loads(json.dumps(run_record(3, result())))
    assert record["ticks"][0]["at"] == pytest.approx(OFFSET + 10.0)
    items = {i.sample.msg_id: i for i in replay_run(record)}
    assert items["b"].rebuilt is not None
    assert items["b"].repromised == pytest.approx(9.0)
    assert items["a"].repromised == pytest.approx(0.1)
