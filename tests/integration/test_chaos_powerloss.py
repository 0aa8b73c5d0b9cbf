"""`surge chaos --short` power loss: a real nats-server whose store is on the lazy
filesystem loses power right after a run of PubAcks. With `sync_interval: always` (Surge's
managed default) nothing acknowledged is lost; with nats-server's lazy default the checker
must see acknowledged messages lost, or it would not be shown to catch a loss."""

from __future__ import annotations

import json
import traceback

import pytest
from tests.fixtures.fuse import require_fuse
from typer.testing import CliRunner

from surge_operator.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CONTRACT = {"name", "accepted", "lost", "double_effects", "duplicates_absorbed", "recovery_s"}


def test_fsync_always_loses_nothing_and_lazy_fsync_loses_acknowledged_messages() -> None:
    require_fuse()
    names = ["power-loss-fsync-always", "power-loss-fsync-lazy"]
    result = CliRunner().invoke(
        app, ["chaos", "--short", "--json", *(arg for n in names for arg in ("--only", n))]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), "".join(
        traceback.format_exception(result.exception)
    )
    scenarios = json.loads(result.stdout[result.stdout.index("[") :])
    print("\n" + json.dumps([{k: v for k, v in s.items() if "ids" not in k} for s in scenarios]))
    assert [s["name"] for s in scenarios] == names
    always, lazy = scenarios
    for s in scenarios:
        assert set(s) >= CONTRACT
        assert s["accepted"] == 600  # every id was acknowledged, before or after the crash
        assert s["double_effects"] == 0
        assert s["recovery_s"] is not None
    assert always["lost"] == 0, always["lost_ids"]
    assert always["unsynced_bytes_at_crash"] == 0  # fsync before every PubAck
    assert lazy["lost"] > 0
    assert lazy["unsynced_bytes_at_crash"] > 0
    assert lazy["expects_loss"] is True
    assert result.exit_code == 0  # the lazy control passes by showing its loss
