"""Reading the failover process's own lines: the move after its last start, the RPO the
killed process estimated before acting, and the moves its status recorded."""

from __future__ import annotations

import json

from surge_operator.chaos.operator_driver import (
    decided_rpo,
    history,
    moved_in_last_start,
    parse_log,
)


def line(event: str, at: float, **fields: object) -> str:
    return json.dumps({"event": event, "at": at, **fields})


def tick(at: float, *, moved: bool, reason: str = "NotFailedOver") -> str:
    return line("tick", at, done=at + 0.1, moved=moved, reason=reason, rpo=None)


LOG = "\n".join(
    [
        line("started", 10.0),
        tick(10.1, moved=False),
        line("acting", 11.0, action="promote", target="west", epoch=1, rpo=3),
        line("crash", 11.2, point="promoted"),
        "Traceback (most recent call last): not a line of ours",
        line("started", 14.0),
        tick(14.2, moved=False, reason="ActiveRegionProbesFailing"),
        line("acting", 14.5, action="resume", target="west", epoch=1, rpo=None),
        tick(14.5, moved=True, reason="TransitionResumed"),
    ]
)


def test_only_json_lines_are_read() -> None:
    assert [x["event"] for x in parse_log(LOG)] == [
        "started",
        "tick",
        "acting",
        "crash",
        "started",
        "tick",
        "acting",
        "tick",
    ]


def test_the_move_is_counted_from_the_last_start() -> None:
    moved = moved_in_last_start(parse_log(LOG))
    assert moved is not None
    assert moved.tick == 2
    assert abs(moved.after_start_s - 0.6) < 1e-9
    assert moved.line["reason"] == "TransitionResumed"


def test_no_move_since_the_last_start_is_none() -> None:
    lines = parse_log(LOG)
    assert moved_in_last_start(lines[:4]) is None  # the killed start never printed its tick
    assert moved_in_last_start([]) is None


def test_the_rpo_is_the_killed_process_estimate_when_the_successor_has_none() -> None:
    lines = parse_log(LOG)
    assert decided_rpo(lines) == 3
    assert decided_rpo(lines[:2]) is None


def test_history_lists_kind_from_to() -> None:
    status = {"history": [{"kind": "failover", "from": "east", "to": "west", "reason": "x"}]}
    assert history(status) == [("failover", "east", "west")]
    assert history({}) == []
