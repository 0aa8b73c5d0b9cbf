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


def test_bench_autoscale_json_has_one_row_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every bundled profile's goals are checked in test_sim_engine; here only the shape.
    monkeypatch.setattr(command, "all_profile_names", lambda: ["outage-release"])
    result = runner.invoke(app, ["bench", "autoscale", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["profiles"]
    assert row["profile"] == "outage-release"
    assert {"replica_seconds_vs_keda", "replica_seconds_vs_oracle", "goals_met"} <= set(row)


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
