"""`surge drain-region` on real nats-servers: draining the healthy active region moves
traffic to the standby by the normal promotion path, and a drained standby is never a
target, even when the active region dies."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext
from tests.fixtures.nats_regions import Regions
from tests.integration.failover_support import (
    CONFIG,
    PIPELINE,
    controller_for,
    mirroring_controller,
)

from surge_workers import provision

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60)]


async def test_draining_the_healthy_active_region_promotes_the_standby(
    regions: Regions, east_js: JetStreamContext
) -> None:
    await provision.provision_pipeline(east_js, PIPELINE)
    controller = controller_for(regions)
    assert (await controller.tick()).active_region == "east"
    moved = None
    for _ in range(CONFIG.failure_threshold + 5):
        outcome = await controller.tick(drained=frozenset({"east"}))
        assert outcome.error is None, outcome.error
        if outcome.moved:
            moved = outcome
            break
        await asyncio.sleep(CONFIG.probe_interval)
    assert moved is not None, "draining the active region never moved traffic"
    assert moved.active_region == "west"
    # While drained, a failback request does not bring traffic back.
    for _ in range(3):
        again = await controller.tick(failback_requested=True, drained=frozenset({"east"}))
        assert again.active_region == "west"


async def test_a_drained_standby_is_never_promoted(
    regions: Regions, east_js: JetStreamContext
) -> None:
    controller = await mirroring_controller(regions, east_js)
    regions.servers["east"].kill()
    for _ in range(CONFIG.failure_threshold + 2):
        outcome = await controller.tick(drained=frozenset({"west"}))
        assert not outcome.moved
        await asyncio.sleep(CONFIG.probe_interval)
    assert outcome.active_region == "east"
