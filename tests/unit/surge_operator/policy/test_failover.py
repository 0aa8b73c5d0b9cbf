"""The failover state machine: promotes after N failed probes, never onto a dead region,
once per outage, epochs only grow, and flapping never causes ping-pong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surge_operator.api import FailoverSpec
from surge_operator.policy.failover import (
    Action,
    FailoverConfig,
    FailoverDecision,
    FailoverReason,
    FailoverState,
    ProbeResult,
    decide,
)

CONFIG = FailoverConfig(probe_interval=1.0, failure_threshold=3)
AUTO = FailoverConfig(probe_interval=1.0, failure_threshold=3, automatic_failback=True)


def probes(at: float, **ok: bool) -> list[ProbeResult]:
    return [
        ProbeResult.success(r, at) if good else ProbeResult.failure(r, at, "connection refused")
        for r, good in ok.items()
    ]


@dataclass
class Run:
    """Drive the machine tick by tick like the controller does (actions always succeed)."""

    config: FailoverConfig
    state: FailoverState
    at: float = 0.0

    def tick(self, *, failback: bool = False, **ok: bool) -> FailoverDecision:
        self.at += self.config.probe_interval
        decision = decide(
            self.state, probes(self.at, **ok), self.config, at=self.at, failback_requested=failback
        )
        self.state = decision.state
        return decision

    def ticks(self, n: int, **ok: bool) -> list[FailoverDecision]:
        return [self.tick(**ok) for _ in range(n)]


def two_regions(config: FailoverConfig = CONFIG) -> Run:
    return Run(config, FailoverState.initial(["east", "west"], "east"))


# --------------------------------------------------------------------------- examples


def test_healthy_regions_keep_traffic_on_the_primary() -> None:
    run = two_regions()
    decisions = run.ticks(10, east=True, west=True)
    assert all(d.action is Action.NONE for d in decisions)
    assert decisions[-1].reason is FailoverReason.HEALTHY
    assert run.state.active == "east"
    assert run.state.epoch == 0


def test_fewer_failures_than_the_threshold_do_not_promote() -> None:
    run = two_regions()
    _, second = run.ticks(2, east=False, west=True)
    assert second.action is Action.NONE
    assert second.reason is FailoverReason.PROBES_FAILING
    assert "2/3 failed probes" in second.message
    assert run.tick(east=True, west=True).reason is FailoverReason.HEALTHY


def test_threshold_failures_promote_the_healthy_standby() -> None:
    run = two_regions()
    *_, decision = run.ticks(3, east=False, west=True)
    assert decision.action is Action.PROMOTE
    assert (decision.source, decision.target) == ("east", "west")
    assert decision.reason is FailoverReason.PROMOTED
    assert decision.state.active == "west"
    assert decision.epoch == 1
    assert decision.state.last_transition_at == run.at
    assert "east down for 2.0s: 3 failed probes in a row (connection refused)" in decision.message


def test_never_promotes_onto_a_dead_standby_and_says_so() -> None:
    run = two_regions()
    decisions = run.ticks(5, east=False, west=False)
    assert all(d.action is Action.NONE for d in decisions)
    assert decisions[-1].reason is FailoverReason.NO_HEALTHY_STANDBY
    assert "no healthy standby (west failing" in decisions[-1].message
    assert run.state.active == "east"


def test_never_promotes_onto_a_standby_that_was_never_probed() -> None:
    run = two_regions()
    decisions = run.ticks(3, east=False)
    assert decisions[-1].reason is FailoverReason.NO_HEALTHY_STANDBY
    assert "west not probed yet" in decisions[-1].message


def test_a_standby_hit_by_the_same_outage_is_promoted_once_it_answers_threshold_probes() -> None:
    run = two_regions()
    run.ticks(4, east=False, west=False)
    waiting = run.ticks(2, east=False, west=True)
    assert [d.reason for d in waiting] == [FailoverReason.NO_HEALTHY_STANDBY] * 2
    assert "west recovering (2 good probes in a row)" in waiting[-1].message
    decision = run.tick(east=False, west=True)
    assert decision.action is Action.PROMOTE
    assert decision.target == "west"


def test_a_long_outage_promotes_exactly_once() -> None:
    run = two_regions()
    actions = [d.action for d in run.ticks(50, east=False, west=True)]
    assert actions.count(Action.PROMOTE) == 1
    assert run.state.epoch == 1


def test_failed_promotion_is_retried_on_the_next_tick() -> None:
    run = two_regions()
    run.ticks(2, east=False, west=True)
    decision = run.tick(east=False, west=True)
    assert decision.action is Action.PROMOTE
    run.state = decision.observed  # the controller could not promote: keep health only
    assert run.state.active == "east"
    assert run.state.epoch == 0
    again = run.tick(east=False, west=True)
    assert again.action is Action.PROMOTE
    assert again.epoch == 1


def test_without_automatic_failback_traffic_stays_on_the_promoted_region() -> None:
    run = two_regions()
    run.ticks(3, east=False, west=True)
    decisions = run.ticks(100, east=True, west=True)
    assert all(d.action is Action.NONE for d in decisions)
    assert decisions[-1].reason is FailoverReason.AWAITING_RECOVERY
    assert run.state.active == "west"


def test_automatic_failback_waits_for_sustained_health() -> None:
    run = two_regions(AUTO)
    run.ticks(3, east=False, west=True)
    recovering = run.ticks(AUTO.recovery_threshold - 1, east=True, west=True)
    assert all(d.action is Action.NONE for d in recovering)
    assert "14/15 good probes before automatic failback" in recovering[-1].message
    decision = run.tick(east=True, west=True)
    assert decision.action is Action.FAILBACK
    assert (decision.source, decision.target) == ("west", "east")
    assert decision.reason is FailoverReason.FAILED_BACK
    assert decision.epoch == 2


def test_explicit_failback_needs_only_a_healthy_primary() -> None:
    run = two_regions()
    run.ticks(3, east=False, west=True)
    refused = run.tick(failback=True, east=False, west=True)
    assert refused.action is Action.NONE
    assert refused.reason is FailoverReason.FAILBACK_REFUSED
    assert "east is not healthy" in refused.message
    decision = run.tick(failback=True, east=True, west=True)
    assert decision.action is Action.FAILBACK
    assert decision.target == "east"
    assert decision.epoch == 2


def test_failback_request_on_the_primary_is_a_no_op() -> None:
    run = two_regions()
    assert run.tick(failback=True, east=True, west=True).action is Action.NONE


def test_disabled_failover_reports_the_outage_but_never_acts() -> None:
    run = two_regions(FailoverConfig(enabled=False, failure_threshold=2))
    decisions = run.ticks(10, east=False, west=True)
    assert all(d.action is Action.NONE for d in decisions)
    assert decisions[-1].reason is FailoverReason.DISABLED
    assert "east down" in decisions[-1].message
    assert decisions[-1].state.region_health("east").consecutive_failures == 10


def test_a_single_region_reports_that_there_is_no_standby() -> None:
    run = Run(CONFIG, FailoverState.initial(["east"], "east"))
    *_, decision = run.ticks(3, east=False)
    assert decision.reason is FailoverReason.NO_HEALTHY_STANDBY
    assert "no standby region configured" in decision.message


def test_promotion_prefers_spec_order_among_healthy_standbys() -> None:
    run = Run(CONFIG, FailoverState.initial(["east", "west", "south"], "east"))
    *_, decision = run.ticks(3, east=False, west=False, south=True)
    assert decision.target == "south"
    run2 = Run(CONFIG, FailoverState.initial(["east", "west", "south"], "east"))
    *_, decision2 = run2.ticks(3, east=False, west=True, south=True)
    assert decision2.target == "west"


def test_a_second_outage_moves_traffic_to_a_third_region_not_back() -> None:
    run = Run(CONFIG, FailoverState.initial(["east", "west", "south"], "east"))
    run.ticks(3, east=False, west=True, south=True)
    *_, decision = run.ticks(3, east=True, west=False, south=True)
    assert decision.target == "south"  # east answered 3 probes, not enough to be trusted
    assert decision.epoch == 2


def test_stale_probes_are_ignored() -> None:
    run = two_regions()
    run.tick(east=True, west=True)
    late = [ProbeResult.failure("east", 0.5, "timeout")]
    decision = decide(run.state, late, CONFIG, at=1.5)
    assert decision.state.region_health("east").consecutive_failures == 0


def test_probes_of_unknown_regions_are_ignored() -> None:
    state = FailoverState.initial(["east", "west"], "east")
    decision = decide(state, [ProbeResult.failure("north", 1.0, "x")], CONFIG, at=1.0)
    assert "north" not in decision.state.health


def test_restored_state_keeps_the_original_primary_on_probation() -> None:
    state = FailoverState.initial(["east", "west"], "east", active="west", epoch=4)
    run = Run(AUTO, state)
    decisions = run.ticks(AUTO.recovery_threshold, east=True, west=True)
    assert [d.action for d in decisions].count(Action.FAILBACK) == 1
    assert decisions[-1].action is Action.FAILBACK
    assert run.state.epoch == 5


def restored_after_a_lost_status_patch() -> FailoverState:
    """The status said east at epoch 2 when the leader died; it had promoted west (3)."""
    return FailoverState.initial(["east", "west", "south"], "east", epoch=2)


def stamped(region: str, at: float, epoch: int) -> ProbeResult:
    return ProbeResult.success(region, at, epoch=epoch)


def test_a_promotion_made_but_never_recorded_is_resumed_not_undone() -> None:
    state = restored_after_a_lost_status_patch()
    seen = [stamped("east", 1.0, 2), stamped("west", 1.0, 3), ProbeResult.success("south", 1.0)]
    decision = decide(state, seen, CONFIG, at=1.0)
    assert (decision.action, decision.reason) == (Action.RESUME, FailoverReason.RESUMED)
    assert (decision.source, decision.target) == ("east", "west")
    assert (decision.state.active, decision.state.epoch) == ("west", 3)
    assert decision.observed.epoch == 2
    assert "not recorded" in decision.message
    # once resumed (the status now says west at 3) nothing more happens
    after = decide(
        decision.state, [stamped("east", 2.0, 2), stamped("west", 2.0, 3)], CONFIG, at=2.0
    )
    assert after.action is Action.NONE
    assert after.state.epoch == 3


def test_the_newest_unrecorded_writer_wins_and_only_a_reachable_one() -> None:
    state = restored_after_a_lost_status_patch()
    seen = [stamped("west", 1.0, 3), stamped("south", 1.0, 4)]
    decision = decide(state, seen, CONFIG, at=1.0)
    assert (decision.target, decision.epoch) == ("south", 4)
    dead = decide(
        state, [stamped("west", 1.0, 3), ProbeResult.failure("west", 2.0, "gone")], CONFIG, at=2.0
    )
    assert dead.action is Action.NONE


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_a_writer_stamped_at_or_below_the_known_epoch_is_not_resumed(epoch: int) -> None:
    # e.g. the fenced old writer of a failback: its stamp is older than the status
    decision = decide(
        restored_after_a_lost_status_patch(), [stamped("west", 1.0, epoch)], CONFIG, at=1.0
    )
    assert decision.action is Action.NONE


def test_disabled_failover_does_not_resume_either() -> None:
    off = FailoverConfig(enabled=False)
    decision = decide(restored_after_a_lost_status_patch(), [stamped("west", 1.0, 3)], off, at=1.0)
    assert decision.action is Action.NONE


def test_with_regions_follows_spec_changes() -> None:
    state = FailoverState.initial(["east", "west"], "east", active="west", epoch=1)
    grown = state.with_regions(["east", "west", "south"], "east")
    assert grown.regions == ("east", "west", "south")
    assert grown.active == "west"
    assert grown.region_health("east").tripped
    shrunk = grown.with_regions(["east", "south"], "east")
    assert shrunk.active == "east"
    assert shrunk.epoch == 1


def test_config_from_spec_and_defaults() -> None:
    config = FailoverConfig.from_spec(
        FailoverSpec(probe_interval_seconds=0.5, failure_threshold=4, automatic_failback=True)
    )
    assert config == FailoverConfig(
        enabled=True, probe_interval=0.5, failure_threshold=4, automatic_failback=True
    )
    assert config.recovery_threshold == 20
    assert config.detection_time == 2.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"probe_interval": 0}, "probe_interval"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_probes": 0}, "recovery_probes"),
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FailoverConfig(**kwargs)  # type: ignore[arg-type]


def test_initial_state_rejects_unknown_regions() -> None:
    with pytest.raises(ValueError, match="primary"):
        FailoverState.initial(["east"], "west")
    with pytest.raises(ValueError, match="active"):
        FailoverState.initial(["east"], "east", active="west")


# --------------------------------------------------------------------------- properties

REGIONS = ("east", "west", "south")
ticks_strategy = st.lists(
    st.tuples(
        st.fixed_dictionaries({r: st.booleans() for r in REGIONS}),
        st.booleans(),  # failback requested
    ),
    max_size=120,
)
configs = st.builds(
    FailoverConfig,
    enabled=st.booleans(),
    probe_interval=st.just(1.0),
    failure_threshold=st.integers(1, 5),
    automatic_failback=st.booleans(),
)


def replay(
    config: FailoverConfig, ticks: Sequence[tuple[dict[str, bool], bool]], regions: Sequence[str]
) -> list[FailoverDecision]:
    run = Run(config, FailoverState.initial(regions, regions[0]))
    return [
        run.tick(failback=failback, **{r: ok for r, ok in health.items() if r in regions})
        for health, failback in ticks
    ]


@settings(max_examples=200, deadline=None)
@given(config=configs, ticks=ticks_strategy)
def test_property_never_moves_traffic_onto_a_region_whose_last_probe_failed(
    config: FailoverConfig, ticks: list[tuple[dict[str, bool], bool]]
) -> None:
    for (health, _), decision in zip(ticks, replay(config, ticks, REGIONS), strict=True):
        if decision.acts:
            assert decision.target is not None
            assert health[decision.target], decision.message


@settings(max_examples=200, deadline=None)
@given(config=configs, ticks=ticks_strategy)
def test_property_epoch_is_monotone_and_counts_transitions(
    config: FailoverConfig, ticks: list[tuple[dict[str, bool], bool]]
) -> None:
    epoch = 0
    for decision in replay(config, ticks, REGIONS):
        assert decision.epoch == epoch + (1 if decision.acts else 0)
        assert decision.observed.epoch == epoch
        epoch = decision.epoch


@settings(max_examples=200, deadline=None)
@given(config=configs, ticks=ticks_strategy)
def test_property_disabled_failover_never_acts(
    config: FailoverConfig, ticks: list[tuple[dict[str, bool], bool]]
) -> None:
    disabled = FailoverConfig(
        enabled=False,
        failure_threshold=config.failure_threshold,
        automatic_failback=config.automatic_failback,
    )
    assert not any(d.acts for d in replay(disabled, ticks, REGIONS))


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.integers(1, 5),
    auto=st.booleans(),
    outage=st.integers(0, 200),
    west=st.lists(st.booleans(), min_size=1, max_size=200),
)
def test_property_one_promotion_per_outage(
    threshold: int, auto: bool, outage: int, west: list[bool]
) -> None:
    """However the standby behaves, an outage of the primary moves traffic once: the
    primary never answers, so there is nowhere else to go and nothing to fail back to."""
    config = FailoverConfig(failure_threshold=threshold, automatic_failback=auto)
    ticks = [({"east": False, "west": ok}, False) for ok in west]
    actions = [d.action for d in replay(config, ticks, ("east", "west"))]
    assert actions.count(Action.PROMOTE) <= 1
    assert Action.FAILBACK not in actions


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.integers(1, 5),
    flaps=st.lists(st.tuples(st.integers(1, 10), st.integers(1, 10)), max_size=30),
)
def test_property_flapping_primary_causes_no_ping_pong(
    threshold: int, flaps: list[tuple[int, int]]
) -> None:
    """The primary alternates failure and success streaks, each shorter than the recovery
    threshold; the standby is healthy. Traffic moves away at most once and never back."""
    config = FailoverConfig(failure_threshold=threshold, automatic_failback=True)
    ticks: list[tuple[dict[str, bool], bool]] = []
    for down, up in flaps:
        ticks += [({"east": False, "west": True}, False)] * down
        ticks += [({"east": True, "west": True}, False)] * min(up, config.recovery_threshold - 1)
    actions = [d.action for d in replay(config, ticks, ("east", "west"))]
    assert actions.count(Action.PROMOTE) <= 1
    assert Action.FAILBACK not in actions


@settings(max_examples=200, deadline=None)
@given(config=configs, ticks=ticks_strategy)
def test_property_transitions_are_separated_by_evidence(
    config: FailoverConfig, ticks: list[tuple[dict[str, bool], bool]]
) -> None:
    """Between two automatic moves at least `failure_threshold` probes pass: one outage
    needs that many failed probes of the active region, so traffic cannot bounce on
    consecutive ticks without a human asking for it."""
    last: int | None = None
    for i, ((_, failback), decision) in enumerate(
        zip(ticks, replay(config, ticks, REGIONS), strict=True)
    ):
        if decision.acts and not failback:
            if last is not None and decision.action is Action.PROMOTE:
                assert i - last >= config.failure_threshold
            last = i


# --------------------------------------------------------------------------- lag gate, RPO


def seq_probes(at: float, **seqs: int | None) -> list[ProbeResult]:
    """A region with an int answered and holds that many messages; None failed."""
    return [
        ProbeResult.success(r, at, last_seq=s)
        if s is not None
        else ProbeResult.failure(r, at, "connection refused")
        for r, s in seqs.items()
    ]


def drive(config: FailoverConfig, rounds: list[dict[str, int | None]]) -> FailoverDecision:
    state = FailoverState.initial(["east", "west"], "east")
    decision = None
    for i, seqs in enumerate(rounds, start=1):
        decision = decide(state, seq_probes(float(i), **seqs), config, at=float(i))
        state = decision.state
    assert decision is not None
    return decision


def test_promotion_carries_the_estimated_rpo() -> None:
    rounds: list[dict[str, int | None]] = [{"east": 130, "west": 100}]
    rounds += [{"east": None, "west": 100}] * 3
    decision = drive(CONFIG, rounds)
    assert decision.action is Action.PROMOTE
    assert decision.rpo == 30
    assert "RPO 30 messages" in decision.message


def test_a_standby_beyond_the_lag_gate_is_not_promoted() -> None:
    gated = FailoverConfig(probe_interval=1.0, failure_threshold=3, max_promotion_lag=10)
    rounds: list[dict[str, int | None]] = [{"east": 130, "west": 100}]
    rounds += [{"east": None, "west": 100}] * 5
    decision = drive(gated, rounds)
    assert decision.action is Action.NONE
    assert decision.reason is FailoverReason.STANDBY_BEHIND
    assert decision.rpo == 30
    assert "maxPromotionLag 10" in decision.message
    caught_up = [*rounds[:-1], {"east": None, "west": 125}]
    assert drive(gated, caught_up).action is Action.PROMOTE


def test_the_mirrors_own_lag_counts_when_larger() -> None:
    state = FailoverState.initial(["east", "west"], "east")
    for at in (1.0, 2.0, 3.0):
        west = ProbeResult.success("west", at, last_seq=100, mirror_lag=40)
        decision = decide(state, [ProbeResult.failure("east", at, "down"), west], CONFIG, at=at)
        state = decision.state
    assert decision.rpo == 40


def test_unlimited_lag_gate_always_promotes() -> None:
    open_gate = FailoverConfig(probe_interval=1.0, failure_threshold=3, max_promotion_lag=None)
    rounds: list[dict[str, int | None]] = [{"east": 10**9, "west": 0}]
    rounds += [{"east": None, "west": 0}] * 3
    assert drive(open_gate, rounds).action is Action.PROMOTE


def test_two_flapping_regions_do_not_ping_pong_through_the_last_resort() -> None:
    """Both regions fail in turn every few probes; without the dwell the last-resort path
    would move traffic on every outage."""
    run = two_regions()
    moves = 0
    pattern = [(False, True)] * 3 + [(True, False)] * 3
    for _ in range(8):
        for east, west in pattern:
            if run.tick(east=east, west=west).acts:
                moves += 1
    horizon = 8 * len(pattern) * CONFIG.probe_interval
    assert moves <= 1 + horizon // CONFIG.min_dwell
    assert moves < 8
