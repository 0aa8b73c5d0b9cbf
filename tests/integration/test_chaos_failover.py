"""`surge chaos --short` on real nats-servers: SIGKILL of the primary, and a split brain
healed by merging the old primary's tail. Nothing acknowledged may be lost and nothing may
take effect twice; the checker compares id by id."""

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
