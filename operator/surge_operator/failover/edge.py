"""The controller's NATS edge behind a Protocol, as `policy/` and `resources/` are kept
pure: `FailoverController` only talks to a `RegionEdge`, so its wiring is unit-tested
with a small fake while `NatsRegionEdge` runs the real probes and JetStream calls
(exercised against real nats-servers in tests/integration/test_failover_regions.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from surge_operator.failover.endpoints import RegionEndpoint
from surge_operator.failover.mirrors import MirrorChange, ensure_mirror, resume_writes
from surge_operator.failover.probe import RegionProbe, probe, publish_record
from surge_operator.failover.promotion import PromotionResult, failback, promote
from surge_workers.contract import FailoverRecord, Priority
from surge_workers.pipeline import PipelineConfig


class RegionEdge(Protocol):
    """Everything the controller does to regions. Probes never raise; the actions raise
    `FailoverError` subclasses."""

    async def probe(
        self, endpoint: RegionEndpoint, streams: Sequence[str], *, at: float, request_timeout: float
    ) -> RegionProbe: ...

    async def promote(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        ack_floors: Mapping[Priority, int] | None,
        epoch: int,
        leader_token: int,
        request_timeout: float,
    ) -> PromotionResult: ...

    async def failback(
        self,
        target: RegionEndpoint,
        current: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        epoch: int,
        leader_token: int,
        request_timeout: float,
    ) -> PromotionResult: ...

    async def ensure_mirror(
        self,
        standby: RegionEndpoint,
        active: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        leader_token: int,
        request_timeout: float,
    ) -> MirrorChange: ...

    async def publish_record(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        record: FailoverRecord,
        *,
        request_timeout: float,
    ) -> None: ...

    async def resume_writes(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        leader_token: int,
        request_timeout: float,
    ) -> None: ...


class NatsRegionEdge:
    """The real edge: short-lived NATS connections per call (see `endpoints.connect`)."""

    async def probe(
        self, endpoint: RegionEndpoint, streams: Sequence[str], *, at: float, request_timeout: float
    ) -> RegionProbe:
        return await probe(endpoint, streams, at=at, request_timeout=request_timeout)

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
        return await promote(
            endpoint,
            pipeline,
            ack_floors=ack_floors,
            epoch=epoch,
            leader_token=leader_token,
            request_timeout=request_timeout,
        )

    async def failback(
        self,
        target: RegionEndpoint,
        current: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        epoch: int,
        leader_token: int,
        request_timeout: float,
    ) -> PromotionResult:
        return await failback(
            target,
            current,
            pipeline,
            epoch=epoch,
            leader_token=leader_token,
            request_timeout=request_timeout,
        )

    async def ensure_mirror(
        self,
        standby: RegionEndpoint,
        active: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        leader_token: int,
        request_timeout: float,
    ) -> MirrorChange:
        return await ensure_mirror(
            standby, active, pipeline, leader_token=leader_token, request_timeout=request_timeout
        )

    async def publish_record(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        record: FailoverRecord,
        *,
        request_timeout: float,
    ) -> None:
        await publish_record(endpoint, pipeline, record, request_timeout=request_timeout)

    async def resume_writes(
        self,
        endpoint: RegionEndpoint,
        pipeline: PipelineConfig,
        *,
        leader_token: int,
        request_timeout: float,
    ) -> None:
        await resume_writes(
            endpoint, pipeline, leader_token=leader_token, request_timeout=request_timeout
        )
