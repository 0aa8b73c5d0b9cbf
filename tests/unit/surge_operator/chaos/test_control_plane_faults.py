"""The pure parts of the control-plane scenarios: the replica log's record, the verdicts on
replicas and on the operator's behaviour in an API-server outage, the recovery time, the
operator's log events; and how the suite selects these scenarios and refuses them when the
control plane cannot start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from surge_operator.chaos import control_plane_faults as faults
from surge_operator.chaos import suite
from surge_operator.chaos.operator_host import ReplicaHistory, log_events

CONTROL_PLANE = {"operator-kill-9-mid-scale", "apiserver-restart"}


def test_the_replica_history_keeps_each_change_once_in_order() -> None:
    history = ReplicaHistory()
    for at, replicas in enumerate([1, 1, 3, 3, 5, 3, 3, 12]):
        history.record(float(at), replicas)
    assert history.seen() == [1, 3, 5, 3, 12]
    assert history.current() == 12
    assert ReplicaHistory().current() is None


def test_replicas_that_only_climb_to_the_decision_break_nothing() -> None:
    assert faults.replica_violations([1, 3, 5, 12], 12) == []


def test_a_reset_or_a_flap_is_a_violation() -> None:
    (went_down,) = faults.replica_violations([1, 3, 1, 12], 12)
    assert "went down" in went_down
    assert "[1, 3, 1, 12]" in went_down


def test_stopping_short_of_the_decision_is_a_violation() -> None:
    assert faults.replica_violations([1, 3, 5], 12) == ["replicas ended at 5, not the decision 12"]
    assert faults.replica_violations([], 12) == ["replicas ended at None, not the decision 12"]


def outage(down: float, *, exited: bool, code: int | None = 1, said: bool = True) -> list[str]:
    return faults.outage_violations(
        down, exited=exited, exit_code=code, said_why=said, earliest_exit=12.0
    )


def test_riding_out_an_outage_is_always_allowed() -> None:
    assert outage(5.0, exited=False, code=None, said=False) == []
    assert outage(40.0, exited=False, code=None, said=False) == []


def test_an_exit_with_code_1_past_the_earliest_documented_outage_is_allowed() -> None:
    assert outage(23.4, exited=True) == []
    # Below the renew deadline (20 s) but the last renewal came up to one retry period
    # before the stop and the next attempt up to one after the return (measured once).
    assert outage(17.4, exited=True) == []


def test_the_earliest_documented_exit_allows_a_retry_period_either_side() -> None:
    assert faults.EARLIEST_EXIT == faults.RENEW_DEADLINE - 2 * faults.RETRY == 12.0


def test_an_early_exit_a_wrong_code_or_a_silent_exit_are_violations() -> None:
    (early,) = outage(9.0, exited=True)
    assert "only 9.0 s" in early
    assert outage(30.0, exited=True, code=-9) == ["the operator exited with code -9, not 1"]
    assert outage(30.0, exited=True, said=False) == [
        "the operator exited without logging exiting_after_leadership_loss"
    ]


def test_recovery_runs_from_the_fault_to_the_decision() -> None:
    assert faults.recovery(10.0, 14.5) == pytest.approx(4.5)
    assert faults.recovery(10.0, None) is None  # the successor never decided
    assert faults.recovery(None, 3.0) is None


def test_log_events_reads_only_json_lines_of_that_event() -> None:
    log = "\n".join(
        [
            json.dumps({"event": "scaled", "replicas_to": 3}),
            "Traceback (most recent call last):",
            "{not json",
            json.dumps({"event": "leader_elected"}),
            json.dumps({"event": "scaled", "replicas_to": 5}),
        ]
    )
    assert [e["replicas_to"] for e in log_events(log, "scaled")] == [3, 5]
    assert log_events(log, "exiting_after_leadership_loss") == []


def test_the_short_suite_leaves_the_control_plane_scenarios_out_unless_named() -> None:
    short = {s.name for s in suite.select(short=True)}
    assert not short & CONTROL_PLANE
    assert {s.name for s in suite.select()} >= CONTROL_PLANE
    named = suite.select(["apiserver-restart"], short=True)
    assert [s.name for s in named] == ["apiserver-restart"]


def test_a_selected_scenario_without_its_binaries_stops_the_run_naming_make_k8s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SURGE_K8S_BIN_DIR", str(tmp_path))  # nothing built there
    why = faults.control_plane_missing()
    assert why is not None
    assert "kube-apiserver" in why
    assert "make k8s" in why
    with pytest.raises(suite.ScenarioUnavailableError) as raised:
        asyncio.run(suite.run_all(short=True, only=["poison-1pct", "apiserver-restart"]))
    assert str(raised.value) == f"apiserver-restart: {why}"  # before poison-1pct ran
    # Not selected: nothing to say.
    assert suite.unavailable(suite.select(["poison-1pct"])) == []
