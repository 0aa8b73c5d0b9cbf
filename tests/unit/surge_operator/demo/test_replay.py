"""Re-judging recorded runs: the forecast rebuilt tick by tick, each promise made again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from surge_operator.demo.replay import annotate, phase, print_replay, replay_run
from surge_operator.demo.run import DemoOptions

T0 = 1_000.0


def tick(at: float, backlog: dict[str, int], *, ready: int = 2, level: int = 0) -> dict[str, Any]:
    return {
        "at": at,
        "ready": ready,
        "ready_replicas": ready,
        "current_replicas": ready,
        "completion_rate": 50.0,
        "waiting": sum(backlog.values()),
        "priorities": {p: {"backlog": n, "arrival_rate": 10.0} for p, n in backlog.items()},
        "decision": {
            "replicas": ready,
            "unbounded_replicas": float(ready),
            "service_rate": 20.0,
            "startup_s": None,
            "level": level,
        },
        "level": level,
        "forecast": {},
    }


def sample(
    msg_id: str, at: float, position: int, predicted: float, actual: float
) -> dict[str, Any]:
    return {
        "priority": "normal",
        "predicted": predicted,
        "actual": actual,
        "msg_id": msg_id,
        "position": position,
        "enqueued_at": at,
        "level": 0,
    }


def record(*samples: dict[str, Any]) -> dict[str, Any]:
    backlog = {"critical": 0, "normal": 200, "bulk": 50}
    return {
        "seed": 7,
        "summary": {"max_degradation_level": 0},
        "ticks": [tick(T0, backlog), tick(T0 + 1, backlog)],
        "samples": list(samples),
    }


def test_a_promise_is_made_again_from_the_last_forecast_before_the_message() -> None:
    # Two ready replicas x 20 msg/s less critical's 10 msg/s arriving ahead; 8 lanes run
    # beside the newcomer: (200 - 8) / 30 s plus the handling time, which is the run's
    # latest promise to a message first in line.
    run = record(
        sample("first", T0 + 0.2, 1, predicted=0.15, actual=0.2),
        sample("deep", T0 + 1.5, 200, predicted=3.0, actual=5.0),
    )
    items = {i.sample.msg_id: i for i in replay_run(run)}
    assert items["first"].rebuilt == pytest.approx(0.15)
    assert items["deep"].rebuilt == pytest.approx((200 - 8) / 30 + 0.15)
    assert items["deep"].at_s == pytest.approx(1.5)


def test_a_message_before_the_first_tick_gets_no_promise() -> None:
    items = replay_run(record(sample("early", T0 - 5, 10, predicted=1.0, actual=1.0)))
    assert items[0].repromised is None


def test_the_same_model_re_judges_to_the_run_s_own_promises() -> None:
    run = annotate(record(sample("deep", T0 + 1.5, 200, predicted=3.0, actual=5.0)))
    (item,) = replay_run(run)
    assert item.rebuilt_then == pytest.approx(item.rebuilt)
    assert item.repromised == pytest.approx(3.0)


def test_only_the_difference_between_the_models_moves_the_run_s_promise() -> None:
    run = annotate(record(sample("deep", T0 + 1.5, 200, predicted=3.0, actual=5.0)))
    run["samples"][0]["rebuilt"] -= 0.5  # the run's model promised half a second less
    (item,) = replay_run(run)
    assert item.repromised == pytest.approx(3.5)


def test_phases_of_the_demo_surge() -> None:
    options = DemoOptions()  # surge from 24 s to 78 s of 120
    assert [phase(t, options) for t in (10.0, 24.0, 39.9, 40.0, 77.9, 78.0)] == [
        "before",
        "onset",
        "onset",
        "plateau",
        "plateau",
        "drain",
    ]


def test_print_replay_prints_every_miss(tmp_path: Any) -> None:
    run = annotate(record(sample("deep", T0 + 1.5, 200, predicted=3.0, actual=5.0)))
    json.dumps(run)  # a record stays plain JSON
    console = Console(record=True, width=200)
    print_replay([run], console)
    text = console.export_text()
    assert "goal met in 0 of 1 seeds" in text
    assert "MISS seed 7: eta_error_median 0.4 > 0.3" in text
