"""FailoverController wiring with its RegionEdge faked: what it calls, what it keeps, what
it reports for status, conditions and events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from surge_operator.api import Phase
from surge_operator.failover import (
    FailoverController,
    MirrorAction,
    MirrorChange,
    PromotionError,
    PromotionResult,
    RegionEdge,
    RegionEndpoint,
    RegionProbe,
    StreamView,
)
from surge_operator.policy.failover import FailoverConfig, ProbeResult
from surge_workers.contract import FailoverRecord, Priority
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(stream="ORDERS", subject_prefix="support")
EAST = RegionEndpoint(name="east", url="nats://east:4222")
WEST = RegionEndpoint(name="west", url="nats://west:4222", domain="west-1")
CONFIG = FailoverConfig(probe_interval=1.0, failure_threshold=2)


class FakeEdge:
    """A RegionEdge with scripted region health; records promotions and mirror set-ups."""

    def __init__(self) -> None:
        self.up = {"east": True, "west": True}
        self.roles = {"east": "source", "west": "mirror"}
        self.mirror_api = {"west": EAST.api_prefix}
        self.promotions: list[tuple[str, Mapping[Priority, int] | None]] = []
        self.mirrored: list[tuple[str, str]] = []
        self.fail_promotion = False
        self.domains: dict[str, str] = {}
        self.records: list[tuple[str, FailoverRecord]] = []
        self.tokens: list[int] = []
        #: Epoch stamped on a region's writable stream by its last promotion.
        self.epochs: dict[str, int] = {}
        self.mirrored_record: dict[str, FailoverRecord] = {}
        self.last_seq = {"east": 100, "west": 100}
        #: Regions whose writable streams are fenced (a failback fenced them).
        self.fenced: set[str] = set()
        self.resumed: list[tuple[str, int]] = []

    async def probe(
        self,
        endpoint: RegionEndpoint,
        streams: Sequence[str],
        *,
        at: float,
        request_timeout: float,
    ) -> RegionProbe:
        if not self.up[endpoint.name]:
            return RegionProbe(ProbeResult.failure(endpoint.name, at, "connection refused"))
        role = self.roles[endpoint.name]
        view = StreamView(
            role,  # type: ignore[arg-type]
            mirror_api=self.mirror_api.get(endpoint.name),
            fenced=endpoint.name in self.fenced,
        )
        floors = {Priority.CRITICAL: 41} if role == "source" else {}
        return RegionProbe(
            ProbeResult.success(
                endpoint.name,
                at,
                last_seq=self.last_seq[endpoint.name],
                epoch=self.epochs.get(endpoint.name) if role == "source" else None,
            ),
            {name: view for name in streams},
            main=streams[0],
            ack_floors=floors,
            domain=self.domains.get(endpoint.name, endpoint.js_domain),
            record=self.mirrored_record.get(endpoint.name),
        )

    async def promote(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        ack_floors: Mapping[Priority, int] | None,
        epoch: int,
        leader_token: int,
        request_timeout: float,
    ) -> PromotionResult:
        if self.fail_promotion:
            raise PromotionError(f"promoting in {endpoint.name} failed: timeout")
        self.promotions.append((endpoint.name, ack_floors))
        self.tokens.append(leader_token)
        self.roles[endpoint.name] = "source"
        return PromotionResult(endpoint.name, "promoted", messages=100, last_seq=100)

    async def failback(
        self, target: RegionEndpoint, current: RegionEndpoint, pipeline: PipelineConfig, **_: Any
    ) -> PromotionResult:
        self.promotions.append((target.name, None))
        self.roles[target.name] = "source"
        return PromotionResult(target.name, "promoted", messages=100, last_seq=100)

    async def publish_record(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        record: FailoverRecord,
        *,
        request_timeout: float,
    ) -> None:
        self.records.append((endpoint.name, record))

    async def resume_writes(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        leader_token: int,
        request_timeout: float,
    ) -> None:
        self.resumed.append((endpoint.name, leader_token))
        self.fenced.discard(endpoint.name)

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
def edge() -> FakeEdge:
    return FakeEdge()


def test_the_fake_is_a_region_edge() -> None:
    edge: RegionEdge = FakeEdge()
    assert edge is not None


def controller(edge: FakeEdge, **kwargs: Any) -> FailoverController:
    return FailoverController(
        edge=edge,
        cluster="support/acme",
        endpoints=[EAST, WEST],
        primary="east",
        pipeline=PIPELINE,
        config=CONFIG,
        clock=Clock(),
        **kwargs,
    )


async def test_healthy_regions_report_not_failed_over(edge: FakeEdge) -> None:
    outcome = await controller(edge).tick()
    assert outcome.active_region == "east"
    assert outcome.epoch == 0
    assert not outcome.failed_over
    assert outcome.condition_reason == "NotFailedOver"
    assert outcome.history_entry is None
    assert outcome.event is None
    assert outcome.mirrors == ()
    assert edge.promotions == []


async def test_promotion_uses_the_last_ack_floors_and_reports_everything(edge: FakeEdge) -> None:
    ctl = controller(edge)
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
    ctl = controller(edge)
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
    ctl = controller(edge)
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
        outcome = await controller(edge).tick()
    assert outcome.mirrors == ()
    assert edge.mirrored == []
    mismatch = next(line for line in logs if line["event"] == "mirror.domain_mismatch")
    assert (mismatch["expected"], mismatch["reported"]) == ("east", "hub")


async def test_restored_controller_resumes_epoch_and_active_region(edge: FakeEdge) -> None:
    edge.roles.update(east="mirror", west="source")
    edge.mirror_api = {"east": WEST.api_prefix}
    ctl = controller(edge, active="west", epoch=7)
    outcome = await ctl.tick()
    assert (outcome.active_region, outcome.epoch, outcome.failed_over) == ("west", 7, True)
    assert edge.mirrored == []


@pytest.mark.parametrize(("lost", "kind"), [("west", "failover"), ("east", "failback")])
async def test_a_transition_whose_status_was_lost_is_finished_once(
    edge: FakeEdge, lost: str, kind: str
) -> None:
    """The previous leader made `lost` the writer at epoch 8 and died before the status
    patch (still 7): the successor promotes it again (idempotently) at epoch 8, once."""
    other = "east" if lost == "west" else "west"
    edge.roles.update({lost: "source", other: "source"})
    edge.epochs.update({lost: 8, other: 7})
    ctl = controller(edge, active=other, epoch=7)
    outcome = await ctl.tick()
    assert (outcome.active_region, outcome.epoch) == (lost, 8)
    assert edge.promotions[0][0] == lost
    assert outcome.history_entry is not None
    assert (outcome.history_entry.kind, outcome.history_entry.to_value) == (kind, lost)
    assert outcome.condition_reason == "TransitionResumed"
    again = await ctl.tick()
    assert not again.moved
    assert again.epoch == 8
    assert [p[0] for p in edge.promotions] == [lost]


async def test_log_lines_carry_cluster_region_and_epoch(edge: FakeEdge) -> None:
    ctl = controller(edge)
    edge.up["east"] = False
    with capture_logs() as logs:
        await ctl.tick()
        await ctl.tick()
    promote = next(line for line in logs if line["event"] == "failover.promote")
    assert promote["cluster"] == "support/acme"
    assert promote["region"] == "east"
    assert promote["epoch"] == 0
    assert promote["target"] == "west"


async def test_promotion_reports_the_estimated_rpo(edge: FakeEdge) -> None:
    ctl = controller(edge)
    edge.last_seq.update(east=130, west=100)
    await ctl.tick()
    edge.up["east"] = False
    await ctl.tick()
    outcome = await ctl.tick()
    assert outcome.moved
    assert outcome.rpo == 30
    assert "RPO 30 messages" in outcome.condition_message


async def test_a_standby_too_far_behind_is_not_promoted(edge: FakeEdge) -> None:
    ctl = FailoverController(
        edge=edge,
        cluster="support/acme",
        endpoints=[EAST, WEST],
        primary="east",
        pipeline=PIPELINE,
        config=FailoverConfig(probe_interval=1.0, failure_threshold=2, max_promotion_lag=10),
        clock=Clock(),
    )
    edge.last_seq.update(east=150, west=100)
    await ctl.tick()
    edge.up["east"] = False
    for _ in range(4):
        outcome = await ctl.tick()
        assert not outcome.moved
    assert outcome.condition_reason == "StandbyTooFarBehind"
    assert outcome.rpo == 50
    assert edge.promotions == []


async def test_the_active_region_gets_a_record_of_epoch_and_floors_once(edge: FakeEdge) -> None:
    ctl = controller(edge)
    await ctl.tick()
    await ctl.tick()
    assert [(r, rec.epoch, rec.region, rec.floors) for r, rec in edge.records] == [
        ("east", 0, "east", {Priority.CRITICAL: 41})
    ]
    edge.up["east"] = False
    await ctl.tick()
    await ctl.tick()
    assert edge.records[-1][0] == "west"
    assert (edge.records[-1][1].epoch, edge.records[-1][1].region) == (1, "west")


async def test_after_a_restart_promotion_resumes_from_the_mirrored_record(edge: FakeEdge) -> None:
    edge.mirrored_record["west"] = FailoverRecord(0, "east", 1.0, {Priority.NORMAL: 77})
    edge.up["east"] = False
    ctl = controller(edge)  # a fresh process: nothing in memory
    await ctl.tick()
    outcome = await ctl.tick()
    assert outcome.moved
    assert edge.promotions == [("west", {Priority.NORMAL: 77})]


async def test_a_record_of_another_epoch_is_not_trusted(edge: FakeEdge) -> None:
    edge.mirrored_record["west"] = FailoverRecord(3, "east", 1.0, {Priority.NORMAL: 77})
    edge.up["east"] = False
    ctl = controller(edge)
    await ctl.tick()
    await ctl.tick()
    assert edge.promotions == [("west", None)]


class Lease:
    def __init__(self, token: int) -> None:
        self.token = token
        self.held = True

    def holds(self) -> bool:
        return self.held


async def test_no_destructive_action_without_the_lease(edge: FakeEdge) -> None:
    lease = Lease(token=4)
    ctl = controller(edge, leadership=lease)
    await ctl.tick()
    written = len(edge.records)
    lease.held = False
    edge.up["east"] = False
    for _ in range(4):
        outcome = await ctl.tick()
        assert not outcome.moved
    assert outcome.condition_reason == "NotLeader"
    assert edge.promotions == []
    assert len(edge.records) == written
    lease.held = True
    moved = await ctl.tick()
    assert moved.moved
    assert edge.tokens == [4]  # the fencing token travels with the promotion
    edge.up["east"] = True
    lease.held = False
    for _ in range(3):
        await ctl.tick()
    assert edge.mirrored == []  # the old primary is not fenced or deleted without the lease


async def test_after_a_restart_the_rpo_comes_from_the_mirrored_record(edge: FakeEdge) -> None:
    edge.mirrored_record["west"] = FailoverRecord(0, "east", 1.0, {}, last_seq=140)
    edge.last_seq["west"] = 100
    edge.up["east"] = False
    ctl = controller(edge)
    await ctl.tick()
    outcome = await ctl.tick()
    assert outcome.moved
    assert outcome.rpo == 40


async def test_an_active_region_left_fenced_gets_its_writes_back_once(edge: FakeEdge) -> None:
    """A leader that died between a failback's fence and its promotion leaves the active
    region fenced; with no failback requested any more its successor unfences it."""
    lease = Lease(token=7)
    ctl = controller(edge, leadership=lease)
    edge.fenced.add("east")
    lease.held = False
    held_back = await ctl.tick()
    assert edge.resumed == []
    assert held_back.event is None
    lease.held = True
    outcome = await ctl.tick()
    assert edge.resumed == [("east", 7)]
    assert outcome.event is not None
    assert outcome.event.reason == "WritesResumed"
    assert "east" in outcome.event.message
    assert (outcome.active_region, outcome.epoch, outcome.history_entry) == ("east", 0, None)
    await ctl.tick()
    assert edge.resumed == [("east", 7)]  # nothing fenced any more, nothing done


async def test_a_fenced_standby_is_left_alone(edge: FakeEdge) -> None:
    edge.fenced.add("west")  # a mirror is never written to; only the active region counts
    outcome = await controller(edge).tick()
    assert edge.resumed == []
    assert outcome.event is None


async def test_a_requested_failback_finishes_instead_of_unfencing(edge: FakeEdge) -> None:
    ctl = controller(edge, active="west", epoch=1)
    edge.roles = {"east": "mirror", "west": "source"}
    edge.mirror_api = {"east": WEST.api_prefix}
    edge.fenced.add("west")
    outcome = await ctl.tick(failback_requested=True)
    assert outcome.moved
    assert outcome.active_region == "east"
    assert edge.resumed == []
