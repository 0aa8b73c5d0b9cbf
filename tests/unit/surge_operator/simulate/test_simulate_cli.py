"""`surge simulate` and `surge bench autoscale` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surge_operator.cli import app
from surge_operator.simulate import command
from surge_operator.simulate.traffic import PROFILES, draw_arrivals, write_trace

runner = CliRunner()


def test_simulate_json_has_one_object_per_policy_with_the_documented_fields(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "short.csv"
    write_trace(draw_arrivals(PROFILES["outage-release"], 5), trace)
    result = runner.invoke(app, ["simulate", "--trace", str(trace), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    for policy in ("surge", "keda", "oracle"):
        run = doc[policy]
        assert {"reaction_s", "replica_seconds", "max_backlog", "shed", "throttled"} <= set(run)
        assert set(run["violation_minutes"]) == {"critical", "normal", "bulk", "total"}
        assert set(run["shed"]) == {"critical", "normal", "bulk"}
        assert isinstance(run["refused"], int)
    thresholds = [point["lag_threshold"] for point in doc["keda_sweep"]]
    assert 10 in thresholds
    assert len(thresholds) >= 5
    for point in doc["keda_sweep"]:
        assert set(point) == {"lag_threshold", "violation_minutes", "replica_seconds", "refused"}
    # The bound is below what any policy spent on the same arrivals that met the targets.
    assert doc["lower_bound"]["replica_seconds"] > 0
    assert doc["keda"]["replica_seconds"] == next(
        p["replica_seconds"] for p in doc["keda_sweep"] if p["lag_threshold"] == 10
    )


def test_simulate_runs_keda_at_the_teams_lag_threshold(tmp_path: Path) -> None:
    trace = tmp_path / "short.csv"
    write_trace(draw_arrivals(PROFILES["outage-release"], 5), trace)
    result = runner.invoke(
        app, ["simulate", "--trace", str(trace), "--json", "--keda-lag-threshold", "250"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["settings"]["keda"]["lagThreshold"] == 250
    assert 250 in [p["lag_threshold"] for p in doc["keda_sweep"]]


def test_simulate_writes_a_plot(tmp_path: Path) -> None:
    png = tmp_path / "runs.png"
    result = runner.invoke(app, ["simulate", "-p", "flash-surge", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "flash-surge" in result.output
    assert png.stat().st_size > 10_000


def test_unknown_profile_is_a_usage_error() -> None:
    result = runner.invoke(app, ["simulate", "-p", "nope"])
    assert result.exit_code == 2
    assert "known:" in result.output


def test_bench_autoscale_json_prints_median_worst_and_every_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Goals are bench goals (printed, never asserted); here only what is printed.
    monkeypatch.setattr(command, "all_profile_names", lambda: ["outage-release"])
    result = runner.invoke(app, ["bench", "autoscale", "--json", "--seeds", "2", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    figures = doc["profiles"]["outage-release"]
    assert figures["seeds"] == [1, 2]
    for key in ("surge_violation_min", "replica_seconds_vs_keda", "replica_seconds_vs_lower_bound"):
        assert set(figures[key]) == {"median", "worst"}
    assert len(figures["runs"]) == 2
    per_seed = [m for run in figures["runs"] for m in run["misses"]]
    assert doc["misses"] == per_seed
    assert doc["goals_met"] is (not per_seed)


def test_simulate_runs_a_users_spec_and_rejects_a_bad_one(tmp_path: Path) -> None:
    spec = tmp_path / "mc.yaml"
    spec.write_text(
        "spec:\n"
        "  regions: [{name: east, role: primary, nats: {url: 'nats://n:4222'}}]\n"
        "  autoscaling: {minReplicas: 2, maxReplicas: 12}\n"
    )
    result = runner.invoke(app, ["simulate", "-p", "outage-release", "--spec", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["surge"]["max_replicas"] <= 12
    spec.write_text("spec: {autoscaling: {minReplicas: 5, maxReplicas: 1}}\n")
    result = runner.invoke(app, ["simulate", "-p", "outage-release", "--spec", str(spec)])
    assert result.exit_code == 2
