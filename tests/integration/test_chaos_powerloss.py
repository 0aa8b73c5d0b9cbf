"""`surge chaos --short` power loss: real nats-servers whose stores are on the lazy
filesystem lose power right after a run of PubAcks. With `sync_interval: always` (Surge's
managed default) nothing acknowledged is lost; with nats-server's lazy default the checker
must see acknowledged messages lost, or it would not be shown to catch a loss. Once with
one server, once with three (R3) that all lose power together."""

from __future__ import annotations

import pytest
from tests.fixtures.fuse import require_fuse
from tests.integration.chaos_support import chaos_json

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def run_power_loss(*names: str) -> list[dict[str, object]]:
    require_fuse()
    scenarios, exit_code = chaos_json(*names)
    for s in scenarios:
        assert s["accepted"] == 600  # every id was acknowledged, before or after the crash
        assert s["double_effects"] == 0
        assert s["recovery_s"] is not None
    assert exit_code == 0  # a lazy control passes by showing its loss
    return scenarios


def test_fsync_always_loses_nothing_and_lazy_fsync_loses_acknowledged_messages() -> None:
    always, lazy = run_power_loss("power-loss-fsync-always", "power-loss-fsync-lazy")
    assert always["lost"] == 0, always["lost_ids"]
    assert always["unsynced_bytes_at_crash"] == 0  # fsync before every PubAck
    assert lazy["lost"] > 0
    assert lazy["unsynced_bytes_at_crash"] > 0
    assert lazy["expects_loss"] is True


def test_three_replicas_do_not_save_lazy_fsync_when_every_server_loses_power() -> None:
    always, lazy = run_power_loss("power-loss-r3-fsync-always", "power-loss-r3-fsync-lazy")
    assert (always["servers"], lazy["servers"]) == (3, 3)
    assert always["lost"] == 0, always["lost_ids"]
    assert lazy["lost"] > 0
