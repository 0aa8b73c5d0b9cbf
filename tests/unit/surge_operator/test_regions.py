"""FailoverController wiring with the NATS edge faked: what it calls, what it keeps, what
it reports for status, conditions and events; plus the pure config builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from nats.js.api import StreamConfig
from structlog.testing import capture_logs

from surge_operator import regions
from surge_operator.api import Phase, Region
from surge_operator.policy.failover import FailoverConfig, ProbeResult
from surge_operator.regions import (
    FailoverController,
    MirrorAction,
    MirrorChange,
    PromotionError,
    PromotionResult,
    RegionEndpoint,
    RegionProbe,
    StreamView,
    mirror_config,
    mirror_of,
    pipeline_streams,
    writable_subjects,
)
from surge_workers.contract import Priority
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(stream="ORDERS", subject_prefix="support")
EAST = RegionEndpoint(name="east", url="nats://east:4222")
WEST = RegionEndpoint(name="west", url="nats://west:4222", domain="west-1")
CONFIG = FailoverConfig(probe_interval=1.0, failure_threshold=2)


class FakeEdge:
    """Scripted region health; records promotions and mirror set-ups."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.up = {"east": True, "west": True}
        self.roles = {"east": "source", "west": "mirror"}
        self.mirror_api = {"west": EAST.api_prefix}
        self.promotions: list[tuple[str, Mapping[Priority, int] | None]] = []
        self.mirrored: list[tuple[str, str]] = []
        self.fail_promotion = False
        self.domains: dict[str, str] = {}
        monkeypatch.setattr(regions, "probe", self.probe)
        monkeypatch.setattr(regions, "promote", self.promote)
        monkeypatch.setattr(regions, "ensure_mirror", self.ensure_mirror)

    async def probe(
        self,
        endpoint: RegionEndpoint,
        streams: Sequence[str] = (),
        *,
        at: float,
        request_timeout: float = 1.0,
    ) -> RegionProbe:
        if not self.up[endpoint.name]:
            return RegionProbe(ProbeResult.failure(endpoint.name, at, "connection refused"))
        role = self.roles[endpoint.name]
        view = StreamView(role, mirror_api=self.mirror_api.get(endpoint.name))  # type: ignore[arg-type]
        floors = {Priority.CRITICAL: 41} if role == "source" else {}
        return RegionProbe(
            ProbeResult.success(endpoint.name, at),
            {name: view for name in streams},
            main=streams[0],
            ack_floors=floors,
            domain=self.domains.get(endpoint.name, endpoint.js_domain),
        )

    async def promote(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        ack_floors: Mapping[Priority, int] | None = None,
        request_timeout: float = 5.0,
    ) -> PromotionResult:
        if self.fail_promotion:
            raise PromotionError(f"promoting in {endpoint.name} failed: timeout")
        self.promotions.append((endpoint.name, ack_floors))
        self.roles[endpoint.name] = "source"
        return PromotionResult(endpoint.name, "promoted", messages=100, last_seq=100)

    async def ensure_mirror(
        self, standby: RegionEndpoint, active: RegionEndpoint, pipeline: PipelineConfig, **_: Any
    ) -> MirrorChange:
        self.mirrored.append((standby.name, active.name))
        self.roles[standby.name] = "mirror"
        self.mirror_api[standby.name] = active.api_prefix
        return MirrorChange(standby.name, active.name, MirrorAction.RECREATED, recovered=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def edge(monkeypatch: pytest.MonkeyPatch) -> FakeEdge:
    return FakeEdge(monkeypatch)


def controller(**kwargs: Any) -> FailoverController:
    return FailoverController(
        cluster="support/acme",
        endpoints=[EAST, WEST],
        primary="east",
        pipeline=PIPELINE,
        config=CONFIG,
        clock=Clock(),
        **kwargs,
    )


async def test_healthy_regions_report_not_failed_over(edge: FakeEdge) -> None:
    outcome = await controller().tick()
    assert outcome.active_region == "east"
    assert outcome.epoch == 0
    assert not outcome.failed_over
    assert outcome.condition_reason == "NotFailedOver"
    assert outcome.history_entry is None
    assert outcome.event is None
    assert outcome.mirrors == ()
    assert edge.promotions == []


async def test_promotion_uses_the_last_ack_floors_and_reports_everything(edge: FakeEdge) -> None:
    ctl = controller()
    await ctl.tick()  # sees east's ack floors
    edge.up["east"] = False
    first = await ctl.tick()
    assert not first.moved
    assert first.condition_reason == "ActiveRegionProbesFailing"
    outcome = await ctl.tick()
    assert outcome.moved
    assert edge.promotions == [("west", {Priority.CRITICAL: 41})]
    assert outcome.active_region == "west"
    assert outcome.epoch == 1
    assert outcome.failed_over
    assert outcome.condition_reason == "StandbyPromoted"
    assert outcome.history_entry is not None
    assert outcome.history_entry.kind == "failover"
    assert (outcome.history_entry.from_value, outcome.history_entry.to_value) == ("east", "west")
    assert outcome.history_entry.time.endswith("Z")
    assert outcome.event is not None
    assert (outcome.event.type, outcome.event.reason) == ("Warning", "StandbyPromoted")
    assert outcome.phase_hint is None


async def test_a_failed_promotion_is_retried_and_reported_as_failing_over(edge: FakeEdge) -> None:
    ctl = controller()
    edge.up["east"] = False
    edge.fail_promotion = True
    await ctl.tick()
    outcome = await ctl.tick()
    assert not outcome.moved
    assert outcome.active_region == "east"
    assert outcome.epoch == 0
    assert outcome.error is not None
    assert outcome.condition_reason == "PromotionFailed"
    assert "promoting in west failed" in outcome.condition_message
    assert outcome.phase_hint is Phase.FAILING_OVER
    assert outcome.event is not None
    assert outcome.event.type == "Warning"
    edge.fail_promotion = False
    retried = await ctl.tick()
    assert retried.moved
    assert retried.epoch == 1


async def test_a_returning_old_primary_is_made_a_mirror_of_the_active_region(
    edge: FakeEdge,
) -> None:
    ctl = controller()
    edge.up["east"] = False
    await ctl.tick()
    await ctl.tick()
    assert ctl.state.active == "west"
    edge.up["east"] = True  # comes back still holding a writable stream
    outcome = await ctl.tick()
    assert edge.mirrored == [("east", "west")]
    assert outcome.mirrors[0].recovered == 3
    assert outcome.condition_reason == "OriginalPrimaryRecovering"
    again = await ctl.tick()
    assert again.mirrors == ()  # already a mirror: nothing to do


async def test_no_mirror_is_built_against_a_misconfigured_domain(edge: FakeEdge) -> None:
    edge.roles["west"] = "source"
    edge.domains["east"] = "hub"  # the server says its domain is not the expected "east"
    with capture_logs() as logs:
        outcome = await controller().tick()
    assert outcome.mirrors == ()
    assert edge.mirrored == []
    mismatch = next(line for line in logs if line["event"] == "mirror.domain_mismatch")
    assert (mismatch["expected"], mismatch["reported"]) == ("east", "hub")


async def test_restored_controller_resumes_epoch_and_active_region(edge: FakeEdge) -> None:
    edge.roles.update(east="mirror", west="source")
    edge.mirror_api = {"east": WEST.api_prefix}
    ctl = controller(active="west", epoch=7)
    outcome = await ctl.tick()
    assert (outcome.active_region, outcome.epoch, outcome.failed_over) == ("west", 7, True)
    assert edge.mirrored == []


async def test_log_lines_carry_cluster_region_and_epoch(edge: FakeEdge) -> None:
    ctl = controller()
    edge.up["east"] = False
    with capture_logs() as logs:
        await ctl.tick()
        await ctl.tick()
    promote = next(line for line in logs if line["event"] == "failover.promote")
    assert promote["cluster"] == "support/acme"
    assert promote["region"] == "east"
    assert promote["epoch"] == 0
    assert promote["target"] == "west"


# --------------------------------------------------------------------------- pure builders


def test_endpoint_domain_defaults_to_the_region_name() -> None:
    assert EAST.api_prefix == "$JS.east.API"
    assert WEST.api_prefix == "$JS.west-1.API"


def test_endpoint_from_the_spec_region() -> None:
    region = Region.model_validate(
        {"name": "east", "role": "primary", "nats": {"url": "nats://nats.east:4222"}}
    )
    endpoint = RegionEndpoint.from_region(region, {"token": "t"})
    assert (endpoint.name, endpoint.url, endpoint.api_prefix) == (
        "east",
        "nats://nats.east:4222",
        "$JS.east.API",
    )
    assert endpoint.connect_options == {"token": "t"}


def test_endpoint_repr_hides_credentials() -> None:
    secret = RegionEndpoint("east", "nats://east", connect_options={"token": "s3cr3t"})
    assert "s3cr3t" not in repr(secret)


def test_pipeline_streams_cover_messages_dead_letters_and_kv() -> None:
    assert pipeline_streams(PIPELINE) == (
        "ORDERS",
        "ORDERS-dlq",
        "KV_ORDERS-degradation",
        "KV_ORDERS-routing",
        "KV_ORDERS-transcripts",
    )
    assert writable_subjects(PIPELINE, "ORDERS") == [
        "support.critical.>",
        "support.normal.>",
        "support.bulk.>",
    ]
    assert writable_subjects(PIPELINE, "KV_ORDERS-routing") == ["$KV.ORDERS-routing.>"]
    with pytest.raises(ValueError, match="not a stream"):
        writable_subjects(PIPELINE, "OTHER")


def test_mirror_config_has_no_subjects_and_points_at_the_source_domain() -> None:
    config = mirror_config(PIPELINE, WEST)
    assert config.subjects is None
    assert config.mirror is not None
    assert config.mirror.name == "ORDERS"
    assert config.mirror.external is not None
    assert config.mirror.external.api == "$JS.west-1.API"
    assert config.duplicate_window == PIPELINE.duplicate_window
    assert config.allow_direct is False


def test_mirror_config_refuses_work_queue_streams() -> None:
    with pytest.raises(regions.UnsupportedStreamError, match="limits retention"):
        mirror_config(replace(PIPELINE, retention="workqueue"), EAST)


def test_mirror_of_keeps_limits_and_drops_server_metadata() -> None:
    origin = StreamConfig(
        name="KV_x",
        subjects=["$KV.x.>"],
        allow_direct=True,
        max_msgs_per_subject=1,
        metadata={"_nats.ver": "2.15.1", "team": "a"},
    )
    config = mirror_of(origin, EAST)
    assert config.subjects is None
    assert config.max_msgs_per_subject == 1
    assert config.metadata == {"team": "a", regions.META_ALLOW_DIRECT: "true"}
