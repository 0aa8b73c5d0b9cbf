"""`surge chaos --short` on real nats-servers: SIGKILL of the primary, a split brain healed
by merging the old primary's tail, the primary lost at the peak of a surge, and the
failover controller (its own process) killed inside the promotion it started. Nothing
acknowledged may be lost and nothing may take effect twice; the checker compares id by id."""

from __future__ import annotations

import pytest
from tests.integration.chaos_support import chaos_json

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_surge_chaos_short_json_loses_and_doubles_nothing() -> None:
    scenarios, exit_code = chaos_json("primary-kill-9", "split-brain-heal")
    assert [s["name"] for s in scenarios] == ["primary-kill-9", "split-brain-heal"]
    for s in scenarios:
        assert s["accepted"] > 0
        assert (s["lost"], s["double_effects"]) == (0, 0), s
        assert s["recovery_s"] is not None
    assert scenarios[1]["rpo"] > 0  # the split brain really left an unmirrored tail
    assert exit_code == 0


def test_a_primary_lost_at_a_surge_peak_and_a_failover_process_killed_mid_move_lose_nothing() -> (
    None
):
    scenarios, exit_code = chaos_json("primary-loss-during-surge", "operator-kill-9-mid-failover")
    surge, killed = scenarios
    for s in scenarios:
        assert s["accepted"] > 0
        assert (s["lost"], s["double_effects"]) == (0, 0), s
        assert s["recovery_s"] is not None
        assert s["violations"] == [], s  # for the killed process: epoch, history, order
    # killed with the first message due at the peak of a 5x ramp (the rate the client
    # reached there is printed, not asserted: it depends on the machine's load)
    assert surge["rate_peak_planned"] == 5 * surge["rate_base"]
    assert surge["killed_at_message"] == 630
    # the armed process died inside the move; its successor finished it once
    assert killed["crash_point"] == "promoted"
    assert (killed["epoch"], killed["history"]) == (1, [["failover", "east", "west"]])
    assert exit_code == 0
