"""The failover process's status patch (as the operator's) and its crash points."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from surge_operator.api import HistoryEntry
from surge_operator.chaos.operator_process import arm, patched

ENTRY = HistoryEntry.model_validate(
    {
        "time": "2026-01-01T00:00:00Z",
        "kind": "failover",
        "from": "east",
        "to": "west",
        "reason": "r",
    }
)


def outcome(active: str, epoch: int, entry: HistoryEntry | None) -> Any:
    return SimpleNamespace(active_region=active, epoch=epoch, history_entry=entry)


def test_a_move_appends_its_history_entry() -> None:
    before = {"activeRegion": "east", "failoverEpoch": 0, "history": []}
    after = patched(before, outcome("west", 1, ENTRY))
    assert (after["activeRegion"], after["failoverEpoch"]) == ("west", 1)
    assert [(h["kind"], h["from"], h["to"]) for h in after["history"]] == [
        ("failover", "east", "west")
    ]
    assert before["history"] == []  # the old status is left alone


def test_a_quiet_tick_keeps_the_history() -> None:
    before = patched({}, outcome("west", 1, ENTRY))
    assert patched(before, outcome("west", 1, None))["history"] == before["history"]


def test_an_unknown_crash_point_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown SURGE_CHAOS_CRASH"):
        arm("nowhere")
