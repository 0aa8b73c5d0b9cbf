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

CONTROL_PLANE = {
    "operator-kill-9-mid-scale",
    "operator-sigstop-leader",
    "apiserver-restart",
    "apiserver-sigstop",
}


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


def outage(
    down: float,
    *,
    exited: bool,
    code: int | None = 1,
    said: bool = True,
    latest_ride: float | None = None,
) -> list[str]:
    return faults.outage_violations(
        down,
        exited=exited,
        exit_code=code,
        said_why=said,
        earliest_exit=12.0,
        latest_ride=latest_ride,
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


def test_riding_out_an_outage_past_the_latest_documented_one_is_a_violation() -> None:
    (rode,) = outage(30.0, exited=False, code=None, said=False, latest_ride=24.0)
    assert "rode out an outage of 30.0 s" in rode
    assert outage(23.0, exited=False, code=None, said=False, latest_ride=24.0) == []
    assert outage(30.0, exited=True, latest_ride=24.0) == []


def test_the_latest_ride_is_the_renew_deadline_and_one_retry_period() -> None:
    assert faults.LATEST_RIDE == faults.RENEW_DEADLINE + faults.RETRY == 24.0


def test_the_api_server_freezes_are_on_either_side_of_the_documented_window() -> None:
    assert faults.SHORT_FREEZE < faults.EARLIEST_EXIT  # must be ridden out
    assert faults.LONG_FREEZE > faults.LATEST_RIDE  # the exit is due


def test_the_leader_stays_frozen_past_its_lease() -> None:
    assert faults.FREEZE_LEADER > faults.LEADER_LEASE


def logged(*docs: dict[str, object]) -> str:
    return "\n".join(json.dumps(d) for d in docs)


def test_writes_logged_after_the_thaw_are_listed_in_order_and_other_events_are_not() -> None:
    log = logged(
        {"event": "leadership_expired"},
        {"event": "scaled", "replicas_from": 5, "replicas_to": 7},
        {"event": "tick_degraded"},
        {"event": "owned_objects_applied"},
        {"event": "exiting_after_leadership_loss"},
    )
    assert faults.logged_after_thaw(log, 5) == (["scaled 5->7", "owned_objects_applied"], None)
    assert faults.logged_after_thaw(logged({"event": "standby"}), 5) == ([], None)


def test_a_scaling_that_landed_before_the_freeze_and_was_logged_after_it_is_no_write() -> None:
    # Measured: frozen between its 1->3 write (seen by the replica log) and the log line.
    late = {"event": "scaled", "replicas_from": 1, "replicas_to": 3}
    assert faults.logged_after_thaw(logged(late, {"event": "leadership_lost"}), 3) == (
        [],
        "scaled 1->3",
    )
    # Only the first line can be that one, and only to the value the new leader found.
    again = {"event": "scaled", "replicas_from": 3, "replicas_to": 5}
    assert faults.logged_after_thaw(logged(late, again), 3) == (["scaled 3->5"], "scaled 1->3")
    assert faults.logged_after_thaw(logged(again), 3) == (["scaled 3->5"], None)
    assert faults.logged_after_thaw(logged({"event": "owned_objects_applied"}, late), 3) == (
        ["owned_objects_applied", "scaled 1->3"],
        None,
    )


def test_a_woken_leader_that_finds_itself_deposed_and_writes_nothing_is_fine() -> None:
    assert faults.woken_violations([], found_deposed=True, exited=True, exit_code=1) == []
    # Standing by instead of exiting is allowed too.
    assert faults.woken_violations([], found_deposed=True, exited=False, exit_code=None) == []


def test_a_write_after_the_thaw_a_deposition_unnoticed_or_a_wrong_code_are_violations() -> None:
    (wrote,) = faults.woken_violations(
        ["scaled 5->7"], found_deposed=True, exited=True, exit_code=1
    )
    assert wrote == "the deposed leader wrote after it woke: scaled 5->7"
    (unnoticed,) = faults.woken_violations([], found_deposed=False, exited=False, exit_code=None)
    assert "never logged that it lost the Lease" in unnoticed
    assert faults.woken_violations([], found_deposed=True, exited=True, exit_code=0) == [
        "the deposed leader exited with code 0, not 1"
    ]


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
    assert [e["event"] for e in log_events(log, "leader_elected", "scaled")] == [
        "scaled",
        "leader_elected",
        "scaled",
    ]


def test_the_short_suite_leaves_the_control_plane_scenarios_out_unless_named() -> None:
    short = {s.name for s in suite.select(short=True)}
    assert not short & CONTROL_PLANE
    assert {s.name for s in suite.select()} >= CONTROL_PLANE
    for name in CONTROL_PLANE:
        assert [s.name for s in suite.select([name], short=True)] == [name]


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
