"""Region health and promotion: a pure state machine with epochs and no ping-pong.

Inputs are probe results (one per region per probe interval, each stamped with the time
`at` it was taken), a `FailoverConfig` and the `FailoverState` carried from the previous
tick. The output is a `FailoverDecision`: do nothing, promote a standby, or fail back to
the original primary, with a CamelCase reason, a sentence for humans and the next state.
No I/O and no clock reads: the caller (`surge_operator.failover.FailoverController`)
probes, decides, acts, and only then keeps `decision.state`.

Rules
    * A region is *down* after `failure_threshold` consecutive failed probes. One failed
      probe is noise; the threshold is what separates a blip from an outage.
    * The active region being down triggers a promotion only onto an *eligible* region:
      its latest probe succeeded and it is not *tripped* (or, as a last resort when every
      region was hit, it answered `failure_threshold` probes in a row). Never onto a dead
      or unknown one: the decision then says which regions were considered and why none
      qualified.
    * A region that went down is *tripped* until it has answered `recovery_threshold`
      probes in a row (default `failure_threshold * 5`). Tripped regions are not promotion
      targets. That is what stops ping-pong: a flapping region never accumulates a long
      enough streak to take traffic back, so an outage causes one promotion, not many.
    * Failback (back to the original primary) happens only when `automatic_failback` is on
      and the original primary has recovered (not tripped any more), or when a human asks
      for it (`failback_requested`) and its latest probe succeeded.
    * Promotion is gated on the standby's lag: the *estimated RPO* is how many messages
      the active region was last seen to hold beyond the standby's copy (its last probed
      sequence minus the standby's, or the mirror's own reported lag when larger). Above
      `max_promotion_lag` the standby is not promoted automatically (reason
      StandbyTooFarBehind). Below it the promotion goes ahead and the decision carries the
      RPO, so status, events and metrics report it; those messages are not lost but
      unavailable until the old primary heals and its tail is recovered.
    * Hysteresis on the last-resort path: a tripped region is promoted as a last resort
      only once `recovery_threshold` probe intervals passed since the previous
      transition, so two flapping regions cannot ping-pong (each move re-copies a stream).
    * Every promotion or failback increases `epoch` by one; it never decreases. Workers and
      gateways can fence on it: a region whose epoch is behind is not the writer.
    * A transition made but never recorded is resumed, not undone. The state is restored
      from status after an operator restart, and the status patch comes after the NATS
      actions: a leader killed in between leaves a region writable and stamped with an
      epoch above the restored one. The first probe that sees it resumes that transition
      (same target, same epoch: the idempotent promotion finishes what is missing) instead
      of treating the region as a stray writer to demote, which would undo a promotion
      that clients may already have written to and take the epoch backwards.
    * Disabled failover never acts but still tracks and reports health.

Probes older than the last probe already counted for a region are ignored, so a delayed
result can never rewind a streak.

The caller acts on `decision.action`; if the action fails it keeps `decision.observed`
(health updated, no transition), so the next tick decides again instead of believing a
promotion that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from surge_operator.api import FailoverSpec

#: Sustained health before a tripped region may take traffic again, in failure thresholds.
RECOVERY_FACTOR = 5
#: Default gate on promotion: a standby further behind than this many messages needs a
#: human (raise spec.failover.maxPromotionLag) rather than an automatic promotion.
DEFAULT_MAX_PROMOTION_LAG = 10_000


class Action(StrEnum):
    NONE = "none"
    PROMOTE = "promote"
    FAILBACK = "failback"
    #: Finish a transition a previous leader made in NATS but never recorded.
    RESUME = "resume"


class FailoverReason(StrEnum):
    """Machine-readable cause of a decision (usable as the FailedOver condition reason)."""

    HEALTHY = "ActiveRegionHealthy"
    PROBES_FAILING = "ActiveRegionProbesFailing"
    PROMOTED = "StandbyPromoted"
    NO_HEALTHY_STANDBY = "NoHealthyStandby"
    FAILED_BACK = "FailedBack"
    AWAITING_RECOVERY = "OriginalPrimaryRecovering"
    FAILBACK_REFUSED = "FailbackRefused"
    STANDBY_BEHIND = "StandbyTooFarBehind"
    RESUMED = "TransitionResumed"
    DISABLED = "FailoverDisabled"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One health probe of one region. `reason` says why it failed (empty when ok)."""

    region: str
    ok: bool
    at: float
    reason: str = ""
    latency: float | None = None
    #: Last sequence of the region's message stream (None: no stream or not read).
    last_seq: int | None = None
    #: For a mirror: messages it knows it is behind its origin (None: not a mirror).
    mirror_lag: int | None = None
    #: Epoch stamped on the region's writable message stream by the promotion that made
    #: it writable (None: a mirror, no stream, or never promoted).
    epoch: int | None = None

    @classmethod
    def success(
        cls,
        region: str,
        at: float,
        latency: float | None = None,
        *,
        last_seq: int | None = None,
        mirror_lag: int | None = None,
        epoch: int | None = None,
    ) -> ProbeResult:
        return cls(
            region=region,
            ok=True,
            at=at,
            latency=latency,
            last_seq=last_seq,
            mirror_lag=mirror_lag,
            epoch=epoch,
        )

    @classmethod
    def failure(cls, region: str, at: float, reason: str) -> ProbeResult:
        return cls(region=region, ok=False, at=at, reason=reason or "probe failed")


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    enabled: bool = True
    probe_interval: float = 2.0
    failure_threshold: int = 3
    automatic_failback: bool = False
    #: Consecutive good probes before a tripped region is trusted again (None: 5 * threshold).
    recovery_probes: int | None = None
    #: Largest estimated RPO (messages) an automatic promotion accepts (None: no limit).
    max_promotion_lag: int | None = DEFAULT_MAX_PROMOTION_LAG

    def __post_init__(self) -> None:
        if self.probe_interval <= 0:
            raise ValueError("probe_interval must be > 0")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if self.recovery_probes is not None and self.recovery_probes < 1:
            raise ValueError("recovery_probes must be >= 1")
        if self.max_promotion_lag is not None and self.max_promotion_lag < 0:
            raise ValueError("max_promotion_lag must be >= 0")

    @classmethod
    def from_spec(cls, spec: FailoverSpec) -> FailoverConfig:
        return cls(
            enabled=spec.enabled,
            probe_interval=spec.probe_interval_seconds,
            failure_threshold=spec.failure_threshold,
            automatic_failback=spec.automatic_failback,
            max_promotion_lag=spec.max_promotion_lag,
        )

    @property
    def recovery_threshold(self) -> int:
        if self.recovery_probes is not None:
            return self.recovery_probes
        return self.failure_threshold * RECOVERY_FACTOR

    @property
    def detection_time(self) -> float:
        """Worst-case seconds from a region dying to the decision to promote (no I/O)."""
        return self.failure_threshold * self.probe_interval

    @property
    def min_dwell(self) -> float:
        """Seconds after a transition before a tripped region may take traffic again as
        a last resort (the hysteresis that stops ping-pong)."""
        return self.recovery_threshold * self.probe_interval


@dataclass(frozen=True, slots=True)
class RegionHealth:
    """What the machine remembers about one region's probes."""

    consecutive_failures: int = 0
    consecutive_successes: int = 0
    #: Went down and has not yet answered `recovery_threshold` probes in a row.
    tripped: bool = False
    last_probe_at: float | None = None
    last_ok: bool | None = None
    last_reason: str = ""
    #: Start of the current failure streak, for "down for 6.0s" in messages.
    failing_since: float | None = None
    #: Message-stream last sequence and mirror lag from the last successful probe.
    last_seq: int | None = None
    mirror_lag: int | None = None
    #: Epoch stamped on its writable message stream, from the last successful probe.
    writer_epoch: int | None = None

    def probed(self, probe: ProbeResult, config: FailoverConfig) -> RegionHealth:
        if probe.ok:
            successes = self.consecutive_successes + 1
            return replace(
                self,
                consecutive_failures=0,
                consecutive_successes=successes,
                tripped=self.tripped and successes < config.recovery_threshold,
                last_probe_at=probe.at,
                last_ok=True,
                last_reason="",
                failing_since=None,
                last_seq=probe.last_seq if probe.last_seq is not None else self.last_seq,
                mirror_lag=probe.mirror_lag,
                writer_epoch=probe.epoch,
            )
        failures = self.consecutive_failures + 1
        return replace(
            self,
            consecutive_failures=failures,
            consecutive_successes=0,
            tripped=self.tripped or failures >= config.failure_threshold,
            last_probe_at=probe.at,
            last_ok=False,
            last_reason=probe.reason,
            failing_since=self.failing_since if self.failing_since is not None else probe.at,
        )

    def is_down(self, config: FailoverConfig) -> bool:
        return self.consecutive_failures >= config.failure_threshold

    def is_eligible(self) -> bool:
        """May take traffic now: its latest probe succeeded and it is not recovering."""
        return self.last_ok is True and not self.tripped


def _frozen(health: Mapping[str, RegionHealth]) -> Mapping[str, RegionHealth]:
    return MappingProxyType(dict(health))


@dataclass(frozen=True, slots=True)
class FailoverState:
    """Carried from tick to tick. `regions` keeps spec order (original primary first)."""

    active: str
    original_primary: str
    regions: tuple[str, ...]
    health: Mapping[str, RegionHealth] = field(default_factory=lambda: _frozen({}))
    epoch: int = 0
    last_transition_at: float | None = None

    @classmethod
    def initial(
        cls,
        regions: Sequence[str],
        primary: str,
        *,
        active: str | None = None,
        epoch: int = 0,
        last_transition_at: float | None = None,
    ) -> FailoverState:
        """A fresh state, or one restored from status (active region and epoch).

        When restored with traffic away from the original primary, the primary starts
        tripped: it failed once, so it must prove `recovery_threshold` good probes before
        an automatic failback, exactly as if the operator had never restarted.
        """
        names = tuple(regions)
        if primary not in names:
            raise ValueError(f"primary region {primary!r} is not among {names}")
        active = active or primary
        if active not in names:
            raise ValueError(f"active region {active!r} is not among {names}")
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        health = {name: RegionHealth() for name in names}
        if active != primary:
            health[primary] = RegionHealth(tripped=True)
        return cls(
            active=active,
            original_primary=primary,
            regions=names,
            health=_frozen(health),
            epoch=epoch,
            last_transition_at=last_transition_at,
        )

    def with_last_seq(self, region: str, last_seq: int) -> FailoverState:
        """Seed a region's last known sequence (from the mirrored failover record after a
        restart) when no probe of this process has seen it."""
        current = self.health.get(region, RegionHealth())
        if region not in self.regions or current.last_seq is not None:
            return self
        health = dict(self.health)
        health[region] = replace(current, last_seq=last_seq)
        return replace(self, health=_frozen(health))

    def region_health(self, region: str) -> RegionHealth:
        return self.health.get(region, RegionHealth())

    def with_regions(self, regions: Sequence[str], primary: str) -> FailoverState:
        """Follow a spec change (regions added or removed) without losing history.

        The active region is kept when it still exists; otherwise traffic is assumed to be
        back on the (possibly new) primary, which is what the spec now says.
        """
        names = tuple(regions)
        if primary not in names:
            raise ValueError(f"primary region {primary!r} is not among {names}")
        active = self.active if self.active in names else primary
        health = {name: self.health.get(name, RegionHealth()) for name in names}
        return replace(
            self, active=active, original_primary=primary, regions=names, health=_frozen(health)
        )


@dataclass(frozen=True, slots=True)
class FailoverDecision:
    action: Action
    reason: FailoverReason
    message: str
    #: The state to carry when the action was carried out (or when there was none).
    state: FailoverState
    #: Health updated but no transition: carry this when the action failed.
    observed: FailoverState
    #: Region traffic moves to (promote/failback) and the one it leaves.
    target: str | None = None
    source: str | None = None
    #: Estimated RPO of a promotion: messages the source was last seen to hold beyond
    #: the target's copy (recovered after the source heals). None: not known.
    rpo: int | None = None

    @property
    def acts(self) -> bool:
        return self.action is not Action.NONE

    @property
    def epoch(self) -> int:
        return self.state.epoch


def observe(
    state: FailoverState, probes: Iterable[ProbeResult], config: FailoverConfig
) -> FailoverState:
    """Fold probe results into per-region health; unknown regions and stale probes are
    ignored (a late answer must not rewind a streak)."""
    health = dict(state.health)
    for probe in sorted(probes, key=lambda p: p.at):
        if probe.region not in state.regions:
            continue
        current = health.get(probe.region, RegionHealth())
        if current.last_probe_at is not None and probe.at <= current.last_probe_at:
            continue
        health[probe.region] = current.probed(probe, config)
    return replace(state, health=_frozen(health))


def decide(
    state: FailoverState,
    probes: Iterable[ProbeResult],
    config: FailoverConfig,
    *,
    at: float,
    failback_requested: bool = False,
) -> FailoverDecision:
    """The one entry point: fold the probes in, then decide whether traffic moves."""
    observed = observe(state, probes, config)
    active = observed.region_health(observed.active)

    def none(reason: FailoverReason, message: str) -> FailoverDecision:
        return FailoverDecision(Action.NONE, reason, message, state=observed, observed=observed)

    def move(
        action: Action,
        reason: FailoverReason,
        target: str,
        message: str,
        rpo: int | None = None,
    ) -> FailoverDecision:
        moved = replace(observed, active=target, epoch=observed.epoch + 1, last_transition_at=at)
        return FailoverDecision(
            action,
            reason,
            message,
            state=moved,
            observed=observed,
            target=target,
            source=observed.active,
            rpo=rpo,
        )

    unrecorded = _unrecorded_writer(observed)
    if unrecorded is not None and config.enabled:
        writer, epoch = unrecorded
        return FailoverDecision(
            Action.RESUME,
            FailoverReason.RESUMED,
            f"{writer} was made the writer at epoch {epoch} (status said {observed.active} "
            f"at epoch {observed.epoch}): a transition not recorded before the operator "
            "stopped; finishing it",
            state=replace(observed, active=writer, epoch=epoch, last_transition_at=at),
            observed=observed,
            target=writer,
            source=observed.active,
        )

    if active.is_down(config):
        outage = _describe_outage(observed.active, active, at)
        if not config.enabled:
            return none(FailoverReason.DISABLED, f"{outage}; failover is disabled, not acting")
        target = _promotion_target(observed, config, at)
        if target is None:
            return none(
                FailoverReason.NO_HEALTHY_STANDBY,
                f"{outage}; not promoting: no healthy standby ({_candidates(observed)})",
            )
        rpo = estimated_rpo(observed, target)
        if (
            rpo is not None
            and config.max_promotion_lag is not None
            and rpo > config.max_promotion_lag
        ):
            return FailoverDecision(
                Action.NONE,
                FailoverReason.STANDBY_BEHIND,
                f"{outage}; not promoting {target}: it is {rpo} messages behind "
                f"{observed.active}'s last known sequence (maxPromotionLag "
                f"{config.max_promotion_lag}); raise it to promote anyway",
                state=observed,
                observed=observed,
                rpo=rpo,
            )
        return move(
            Action.PROMOTE,
            FailoverReason.PROMOTED,
            target,
            f"{outage}; promoted {target} (epoch {observed.epoch + 1}, {_rpo_text(rpo)})",
            rpo,
        )

    if observed.active != observed.original_primary:
        primary = observed.original_primary
        health = observed.region_health(primary)
        if config.enabled and failback_requested:
            if health.last_ok is True:
                return move(
                    Action.FAILBACK,
                    FailoverReason.FAILED_BACK,
                    primary,
                    f"failback to {primary} requested and {primary} is healthy "
                    f"(epoch {observed.epoch + 1})",
                )
            return none(
                FailoverReason.FAILBACK_REFUSED,
                f"failback to {primary} requested but refused: {primary} is not healthy "
                f"({_describe(health)}); staying on {observed.active}",
            )
        if config.enabled and config.automatic_failback and health.is_eligible():
            return move(
                Action.FAILBACK,
                FailoverReason.FAILED_BACK,
                primary,
                f"{primary} healthy for {health.consecutive_successes} probes in a row; "
                f"failing back from {observed.active} (epoch {observed.epoch + 1})",
            )
        return none(
            FailoverReason.AWAITING_RECOVERY,
            f"serving from {observed.active}; original primary {primary}: {_describe(health)}"
            + (
                f", {health.consecutive_successes}/{config.recovery_threshold} good probes "
                "before automatic failback"
                if config.automatic_failback and config.enabled and health.tripped
                else ""
            ),
        )

    if active.consecutive_failures > 0:
        return none(
            FailoverReason.PROBES_FAILING,
            f"{observed.active}: {active.consecutive_failures}/{config.failure_threshold} "
            f"failed probes ({active.last_reason})",
        )
    if not config.enabled:
        return none(FailoverReason.DISABLED, f"{observed.active} healthy; failover is disabled")
    return none(FailoverReason.HEALTHY, f"{observed.active} healthy")


def _unrecorded_writer(state: FailoverState) -> tuple[str, int] | None:
    """The reachable region another leader made the writer after the epoch this state
    knows (the highest such epoch), or None."""
    claims = [
        (epoch, name)
        for name in state.regions
        if name != state.active
        and (h := state.region_health(name)).last_ok is True
        and (epoch := h.writer_epoch) is not None
        and epoch > state.epoch
    ]
    if not claims:
        return None
    epoch, name = max(claims)
    return name, epoch


def estimated_rpo(state: FailoverState, target: str) -> int | None:
    """Messages the active region was last seen to hold beyond `target`'s copy."""
    source = state.region_health(state.active)
    standby = state.region_health(target)
    if source.last_seq is None and standby.mirror_lag is None:
        return None
    behind = (source.last_seq or 0) - (standby.last_seq or 0)
    return max(0, behind, standby.mirror_lag or 0)


def _rpo_text(rpo: int | None) -> str:
    if rpo is None:
        return "RPO unknown"
    return f"RPO {rpo} messages, recovered when the old primary heals" if rpo else "RPO 0"


def _promotion_target(state: FailoverState, config: FailoverConfig, at: float) -> str | None:
    """First eligible region in spec order, the original primary first.

    When every other region is still tripped (the outage hit them too), one that has
    answered `failure_threshold` probes in a row is taken as a last resort: by the same
    measure that declared the active region dead it is alive, and staying on a dead
    region loses every write. But not within `min_dwell` of the previous transition:
    that is the hysteresis that keeps two flapping regions from ping-ponging.
    """
    order = [state.original_primary, *(r for r in state.regions if r != state.original_primary)]
    others = [r for r in order if r != state.active]
    preferred = (r for r in others if state.region_health(r).is_eligible())
    settled = state.last_transition_at is None or at - state.last_transition_at >= (
        config.min_dwell
    )
    last_resort = (
        r
        for r in others
        if settled
        and state.region_health(r).last_ok is True
        and state.region_health(r).consecutive_successes >= config.failure_threshold
    )
    return next(preferred, None) or next(last_resort, None)


def _describe_outage(region: str, health: RegionHealth, at: float) -> str:
    since = health.failing_since
    duration = f" for {at - since:.1f}s" if since is not None and at >= since else ""
    return (
        f"{region} down{duration}: {health.consecutive_failures} failed probes in a row "
        f"({health.last_reason or 'no reason given'})"
    )


def _describe(health: RegionHealth) -> str:
    if health.last_ok is None:
        return "not probed yet"
    if health.last_ok is False:
        return f"failing ({health.consecutive_failures} in a row: {health.last_reason})"
    if health.tripped:
        return f"recovering ({health.consecutive_successes} good probes in a row)"
    return "healthy"


def _candidates(state: FailoverState) -> str:
    others = [r for r in state.regions if r != state.active]
    if not others:
        return "no standby region configured"
    return "; ".join(f"{r} {_describe(state.region_health(r))}" for r in others)
