"""The stateful half of failover: one controller per MessagingCluster probes every region
through a `RegionEdge`, asks the pure policy (`surge_operator.policy.failover.decide`),
carries the decision out and keeps mirrors in place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from surge_operator.api import HistoryEntry, Phase
from surge_operator.errors import FailoverError, NotLeaderError
from surge_operator.failover.edge import NatsRegionEdge, RegionEdge
from surge_operator.failover.endpoints import RegionEndpoint
from surge_operator.failover.mirrors import MirrorChange
from surge_operator.failover.probe import RegionProbe
from surge_operator.failover.promotion import PromotionResult
from surge_operator.failover.streams import pipeline_streams
from surge_operator.leader import Leadership, Unfenced
from surge_operator.policy.failover import (
    Action,
    FailoverConfig,
    FailoverDecision,
    FailoverReason,
    FailoverState,
    ProbeResult,
    decide,
)
from surge_operator.status import timestamp
from surge_workers.contract import FailoverRecord, Priority
from surge_workers.pipeline import PipelineConfig


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to emit (the operator maps it onto kopf.event/info/warn)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """Everything one tick found and did, in the shape status and events need."""

    at: float
    decision: FailoverDecision
    probes: Mapping[str, RegionProbe]
    active_region: str
    epoch: int
    #: True when traffic is served by a region other than the spec's primary.
    failed_over: bool
    condition_reason: str
    condition_message: str
    promotion: PromotionResult | None = None
    mirrors: tuple[MirrorChange, ...] = ()
    history_entry: HistoryEntry | None = None
    event: Event | None = None
    error: FailoverError | None = None
    #: Estimated RPO of this tick's promotion, or of the one refused for lag (messages).
    rpo: int | None = None

    @property
    def recovered(self) -> int:
        """Messages of old primaries' tails merged into the active region this tick."""
        return sum(m.recovered for m in self.mirrors)

    @property
    def moved(self) -> bool:
        """Traffic changed region in this tick (promotion or failback carried out)."""
        return self.promotion is not None

    @property
    def phase_hint(self) -> Phase | None:
        """FailingOver while a decided promotion has not completed; None otherwise."""
        return Phase.FAILING_OVER if self.error is not None and self.decision.acts else None


def rfc3339(at: float) -> str:
    return timestamp(datetime.fromtimestamp(at, tz=UTC))


class FailoverController:
    """Probe every region, decide (pure), act, keep mirrors in place. One per cluster.

    Not thread-safe; call `tick` from one task. `clock` gives wall-clock seconds (history
    entries carry RFC 3339 times); tests pass a fake.
    """

    def __init__(
        self,
        *,
        cluster: str,
        endpoints: Sequence[RegionEndpoint],
        primary: str,
        pipeline: PipelineConfig,
        config: FailoverConfig,
        active: str | None = None,
        epoch: int = 0,
        probe_timeout: float | None = None,
        action_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        edge: RegionEdge | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.edge: RegionEdge = edge or NatsRegionEdge()
        #: Destructive actions (promote, fence, merge, delete, record) only while it holds.
        self.leadership: Leadership = leadership or Unfenced()
        self.endpoints = {e.name: e for e in endpoints}
        self.pipeline = pipeline
        self.config = config
        self.state = FailoverState.initial(
            [e.name for e in endpoints], primary, active=active, epoch=epoch
        )
        # A probe must finish well inside one interval, or probes pile up.
        self.probe_timeout = probe_timeout or min(2.0, max(0.2, config.probe_interval * 0.5))
        self.action_timeout = action_timeout
        self.clock = clock
        #: Last ack floors seen per region, so a promotion resumes where workers were.
        self.ack_floors: dict[str, Mapping[Priority, int]] = {}
        #: Estimated RPO of the last promotion this controller carried out.
        self.last_rpo: int | None = None
        #: The failover record last written into the active region (None: not yet).
        self.written: FailoverRecord | None = None
        self.cluster = cluster

    def _logger(self, **context: Any) -> Any:
        # Bound per tick, not once in __init__: binding resolves structlog's configuration,
        # and the entrypoint (or a test's capture_logs) may configure it later.
        return structlog.get_logger("surge_operator.failover").bind(cluster=self.cluster, **context)

    @property
    def streams(self) -> tuple[str, ...]:
        return pipeline_streams(self.pipeline)

    @property
    def active(self) -> RegionEndpoint:
        return self.endpoints[self.state.active]

    def update(
        self,
        *,
        endpoints: Sequence[RegionEndpoint],
        primary: str,
        pipeline: PipelineConfig,
        config: FailoverConfig,
    ) -> None:
        """Follow a spec change without forgetting health, epoch or the active region."""
        self.endpoints = {e.name: e for e in endpoints}
        self.pipeline = pipeline
        self.config = config
        self.state = self.state.with_regions([e.name for e in endpoints], primary)

    async def probe_all(self, at: float) -> dict[str, RegionProbe]:
        results = await asyncio.gather(
            *(
                self.edge.probe(e, self.streams, at=at, request_timeout=self.probe_timeout)
                for e in self.endpoints.values()
            )
        )
        return {r.result.region: r for r in results}

    async def tick(
        self, *, failback_requested: bool = False, drained: frozenset[str] = frozenset()
    ) -> TickOutcome:
        at = self.clock()
        probes = await self.probe_all(at)
        # After a restart this process never saw the active region's last sequence; the
        # record mirrored into the standbys still knows it (for the estimated RPO).
        for p in probes.values():
            record = p.record
            if (
                p.ok
                and record is not None
                and (record.region, record.epoch) == (self.state.active, self.state.epoch)
                and record.last_seq
            ):
                self.state = self.state.with_last_seq(record.region, record.last_seq)
        before = self.state
        decision = decide(
            before,
            # A drained region (`surge drain-region`, spec.drainedRegions) counts as down
            # for the decision: an active one is left by the normal promotion path, and a
            # drained standby is never a target. Its real probe still feeds mirrors.
            [
                ProbeResult.failure(name, p.result.at, "region drained")
                if name in drained
                else p.result
                for name, p in probes.items()
            ],
            self.config,
            at=at,
            failback_requested=failback_requested,
        )
        log = self._logger(region=before.active, epoch=before.epoch)
        for name, p in probes.items():
            if p.ok and p.role == "source" and p.ack_floors and name == before.active:
                self.ack_floors[name] = p.ack_floors
        floors = self._floors_for(decision, probes) if decision.acts else None
        promotion: PromotionResult | None = None
        error: FailoverError | None = None
        event: Event | None = None
        if decision.acts and not self.leadership.holds():
            log.warning("failover.not_leader", action=decision.action.value)
            self.state = decision.observed
            return self._outcome(
                at,
                decision,
                probes,
                None,
                (),
                NotLeaderError(
                    f"{decision.action.value} to {decision.target} decided but not carried out: "
                    "this operator does not hold the leader Lease"
                ),
            )
        if decision.acts:
            assert decision.target is not None
            assert decision.source is not None
            log.warning(
                f"failover.{decision.action.value}",
                target=decision.target,
                reason=decision.reason.value,
                detail=decision.message,
            )
            try:
                promotion = await self._carry_out(decision, floors)
            except FailoverError as exc:
                error = exc
                self.state = decision.observed
                log.error("failover.action_failed", target=decision.target, error=exc.message)
            else:
                self.state = decision.state
                self.last_rpo = decision.rpo
                log.warning(
                    "failover.done",
                    target=decision.target,
                    new_epoch=decision.epoch,
                    stream=promotion.stream,
                    messages=promotion.messages,
                    rpo=decision.rpo,
                    start_seqs={p.value: s for p, s in promotion.start_seqs.items()},
                )
        else:
            self.state = decision.state
            resumed = await self._resume_fenced(probes)
            if resumed is not None:
                event = resumed
        await self._publish_record(at, probes, floors if promotion is not None else None)
        mirrors = await self._reconcile_mirrors(probes)
        outcome = self._outcome(at, decision, probes, promotion, mirrors, error)
        return outcome if event is None else replace(outcome, event=event)

    async def _resume_fenced(self, probes: Mapping[str, RegionProbe]) -> Event | None:
        """Outside a failback (which fences and promotes within one tick) the active
        region is never fenced. Found fenced, a leader died mid-failback and the request
        was withdrawn, or a failed unfence: give the writes back to the region that has
        them. A failback still requested is finished by the policy's FAILBACK instead."""
        p = probes.get(self.state.active)
        if p is None or not p.fenced or not self.leadership.holds():
            return None
        log = self._logger(region=self.state.active, epoch=self.state.epoch)
        try:
            await self.edge.resume_writes(
                self.active,
                self.pipeline,
                leader_token=self.leadership.token,
                request_timeout=self.action_timeout,
            )
        except FailoverError as exc:
            log.error("failover.resume_failed", streams=list(p.fenced), error=exc.message)
            return Event("Warning", exc.reason, exc.message)
        message = (
            f"{', '.join(p.fenced)} in {self.state.active} was left fenced (a failback not "
            f"carried out); writes resumed there"
        )
        log.warning("failover.writes_resumed", streams=list(p.fenced))
        return Event("Warning", "WritesResumed", message)

    def _floors_for(
        self, decision: FailoverDecision, probes: Mapping[str, RegionProbe]
    ) -> Mapping[Priority, int] | None:
        """Where the source region's workers were: this process's memory, else the record
        mirrored into the target (it survives an operator restart mid-outage), but only
        when that record is the source's own in the current epoch."""
        assert decision.source is not None
        assert decision.target is not None
        floors = self.ack_floors.get(decision.source)
        if floors:
            return floors
        target = probes.get(decision.target)
        record = target.record if target is not None else None
        if (
            record is not None
            and record.region == decision.source
            and record.epoch == decision.observed.epoch
        ):
            self._logger(region=decision.target).info(
                "failover.floors_from_record",
                source=decision.source,
                floors={p.value: s for p, s in record.floors.items()},
            )
            return record.floors
        return None

    async def _publish_record(
        self,
        at: float,
        probes: Mapping[str, RegionProbe],
        promoted_floors: Mapping[Priority, int] | None,
    ) -> None:
        """Keep the active region's failover record current: epoch, writer, ack floors.
        Written only when it changed, and never over a newer epoch's record."""
        active = self.state.active
        p = probes.get(active)
        if promoted_floors is not None:
            floors: Mapping[Priority, int] = promoted_floors
        elif p is not None and p.ok and p.role == "source":
            floors = p.ack_floors
        else:
            return
        if p is not None and p.record is not None and p.record.epoch > self.state.epoch:
            self._logger(region=active, epoch=self.state.epoch).error(
                "failover.record_newer", record_epoch=p.record.epoch
            )
            return
        record = FailoverRecord(self.state.epoch, active, at, dict(floors))
        last = self.written
        if not self.leadership.holds():
            return
        if last is not None and (last.epoch, last.region, last.floors) == (
            record.epoch,
            record.region,
            record.floors,
        ):
            return
        try:
            await self.edge.publish_record(
                self.endpoints[active], self.pipeline, record, request_timeout=self.action_timeout
            )
        except FailoverError as exc:
            self._logger(region=active, epoch=self.state.epoch).warning(
                "failover.record_failed", error=exc.message
            )
            return
        self.written = record

    async def _carry_out(
        self, decision: FailoverDecision, floors: Mapping[Priority, int] | None
    ) -> PromotionResult:
        assert decision.target is not None
        assert decision.source is not None
        target = self.endpoints[decision.target]
        source = self.endpoints[decision.source]
        if decision.action is Action.FAILBACK:
            return await self.edge.failback(
                target,
                source,
                self.pipeline,
                epoch=decision.epoch,
                leader_token=self.leadership.token,
                request_timeout=self.action_timeout,
            )
        # PROMOTE and RESUME: promotion is idempotent, so a resumed one creates only what
        # the previous leader left undone (consumers, auxiliary streams).
        return await self.edge.promote(
            target,
            self.pipeline,
            ack_floors=floors,
            epoch=decision.epoch,
            leader_token=self.leadership.token,
            request_timeout=self.action_timeout,
        )

    async def _reconcile_mirrors(
        self, probes: Mapping[str, RegionProbe]
    ) -> tuple[MirrorChange, ...]:
        """Every reachable non-active region should mirror the active one. Cheap when it
        already does (the probe told us); failures are logged and retried next tick."""
        active = self.active
        active_probe = probes.get(active.name)
        if active_probe is None or not active_probe.ok:
            return ()  # nothing to mirror from; the next promotion fixes this
        if active_probe.domain != active.js_domain:
            # Mirrors address the active region as $JS.<domain>.API: with the wrong
            # domain they would retry forever against nothing.
            self._logger(region=active.name, epoch=self.state.epoch).error(
                "mirror.domain_mismatch",
                expected=active.js_domain,
                reported=active_probe.domain,
                hint="set jetstream { domain: ... } in the region's nats-server config",
            )
            return ()
        changes: list[MirrorChange] = []
        for name, endpoint in self.endpoints.items():
            p = probes.get(name)
            if name == active.name or p is None or not p.ok:
                continue
            if self._mirrors_active(p, active_probe):
                continue
            log = self._logger(region=name, epoch=self.state.epoch)
            try:
                if not self.leadership.holds():
                    return tuple(changes)
                change = await self.edge.ensure_mirror(
                    endpoint,
                    active,
                    self.pipeline,
                    leader_token=self.leadership.token,
                    request_timeout=self.action_timeout,
                )
            except FailoverError as exc:
                log.error("mirror.failed", source=active.name, error=exc.message)
                continue
            log.info(
                "mirror.reconciled",
                source=active.name,
                action=change.action.value,
                recovered=change.recovered,
            )
            changes.append(change)
        return tuple(changes)

    def _mirrors_active(self, standby: RegionProbe, active: RegionProbe) -> bool:
        """Does the standby mirror every stream the active region has (the message
        stream always: it must exist before the pipeline is provisioned)?"""
        for name in self.streams:
            if name != self.pipeline.stream and active.stream(name).role == "missing":
                continue
            view = standby.stream(name)
            if view.role != "mirror" or view.mirror_api != self.active.api_prefix:
                return False
        return True

    def _outcome(
        self,
        at: float,
        decision: FailoverDecision,
        probes: Mapping[str, RegionProbe],
        promotion: PromotionResult | None,
        mirrors: tuple[MirrorChange, ...],
        error: FailoverError | None,
    ) -> TickOutcome:
        state = self.state
        failed_over = state.active != state.original_primary
        history: HistoryEntry | None = None
        event: Event | None = None
        if promotion is not None and decision.target and decision.source:
            back = decision.action is Action.FAILBACK or (
                decision.action is Action.RESUME and decision.target == state.original_primary
            )
            kind: Literal["failover", "failback"] = "failback" if back else "failover"
            history = HistoryEntry.model_validate(
                {
                    "time": rfc3339(at),
                    "kind": kind,
                    "from": decision.source,
                    "to": decision.target,
                    "reason": decision.message[:1024],
                }
            )
            event = Event(
                "Warning" if kind == "failover" else "Normal",
                decision.reason.value,
                decision.message,
            )
            reason, message = decision.reason.value, decision.message
        elif error is not None:
            event = Event("Warning", error.reason, error.message)
            reason, message = error.reason, f"{decision.message}; {error.message}"
        else:
            reason, message = decision.reason.value, decision.message
            if not failed_over and decision.reason is FailoverReason.HEALTHY:
                reason = "NotFailedOver"
        return TickOutcome(
            at=at,
            decision=decision,
            probes=probes,
            active_region=state.active,
            epoch=state.epoch,
            failed_over=failed_over,
            condition_reason=reason,
            condition_message=message,
            promotion=promotion,
            mirrors=mirrors,
            history_entry=history,
            event=event,
            error=error,
            rpo=decision.rpo,
        )
