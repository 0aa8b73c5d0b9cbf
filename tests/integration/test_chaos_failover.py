"""`surge chaos --short` on real nats-servers: SIGKILL of the primary, and a split brain
healed by merging the old primary's tail. Nothing acknowledged may be lost and nothing may
take effect twice; the checker compares id by id."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from surge_operator.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_surge_chaos_short_json_loses_and_doubles_nothing() -> None:
    result = CliRunner().invoke(
        app,
        ["chaos", "--short", "--json", "--only", "primary-kill-9", "--only", "split-brain-heal"],
    )
    start = result.stdout.index("[")
    scenarios = json.loads(result.stdout[start:])
    print("\n" + json.dumps([{k: v for k, v in s.items() if "ids" not in k} for s in scenarios]))
    assert [s["name"] for s in scenarios] == ["primary-kill-9", "split-brain-heal"]
    for s in scenarios:
        assert set(s) >= {
            "name", "accepted", "lost", "double_effects", "duplicates_absorbed", "recovery_s"
        }  # fmt: skip
        assert s["accepted"] > 0
        assert (s["lost"], s["double_effects"]) == (0, 0), s
        assert s["recovery_s"] is not None
    assert scenarios[1]["rpo"] > 0  # the split brain really left an unmirrored tail
    assert result.exit_code == 0
