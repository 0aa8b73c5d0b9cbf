"""`surge chaos --short --json` run in-process, its printed scenarios parsed; shared by the
chaos test modules so a scenario that raises reports its traceback, not a parse error."""

from __future__ import annotations

import json
import traceback

import pytest
from typer.testing import CliRunner

from surge_operator.cli import app

CONTRACT = {"name", "accepted", "lost", "double_effects", "duplicates_absorbed", "recovery_s"}


def chaos_json(*names: str) -> tuple[list[dict[str, object]], int]:
    """The scenarios `surge chaos --short --json --only <name>...` printed (ids left out of
    the echo) and its exit code."""
    args = ["chaos", "--short", "--json", *(arg for name in names for arg in ("--only", name))]
    result = CliRunner().invoke(app, args)
    raised = result.exception is not None and not isinstance(result.exception, SystemExit)
    if raised or "[" not in result.stdout:
        trace = "".join(traceback.format_exception(result.exception)) if raised else ""
        pytest.fail(
            f"surge chaos printed no result (exit {result.exit_code}):\n{result.output}{trace}"
        )
    scenarios: list[dict[str, object]] = json.loads(result.stdout[result.stdout.index("[") :])
    print("\n" + json.dumps([{k: v for k, v in s.items() if "ids" not in k} for s in scenarios]))
    assert [s["name"] for s in scenarios] == list(names)
    for s in scenarios:
        assert set(s) >= CONTRACT
    return scenarios, result.exit_code
