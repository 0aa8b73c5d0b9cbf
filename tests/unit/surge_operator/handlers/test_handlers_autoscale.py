"""tick(): snapshot -> decide -> scale -> status, with throttled writes."""

from __future__ import annotations

from types import MappingProxyType

from handler_fakes import REF, SPEC, Clock, FakeKube, FakeScaleTarget, FakeSnapshots, make_deps

from surge_operator.api import ConditionType, Priority, PriorityClass
from surge_operator.errors import ConsumerMissingError, NatsUnavailableError
from surge_operator.handlers.autoscale import tick
from surge_operator.handlers.reconcile import reconcile
from surge_operator.policy.types import PriorityMetrics, Snapshot
from surge_operator.status import get_condition


def snapshot(at: float, backlog: int, rate: float, current: int) -> Snapshot:
    per = {
        Priority.CRITICAL: PriorityMetrics(backlog=0, arrival_rate=0.0),
        Priority.NORMAL: PriorityMetrics(backlog=backlog, arrival_rate=rate),
        Priority.BULK: PriorityMetrics(backlog=0, arrival_rate=0.0),
    }
    return Snapshot(
        at=at,
        observed_at=at,
        priorities=MappingProxyType(per),
        current_replicas=current,
        ready_replicas=current,
        completion_rate=10.0 * current,
        waiting=backlog,
    )


async def _ready_cluster(kube: FakeKube, snaps: FakeSnapshots, target: FakeScaleTarget):  # type: ignore[no-untyped-def]
    clock = Clock()
    deps = make_deps(kube, snapshots=snaps, target=target, clock=clock)
    await reconcile(deps, REF, spec_raw=SPEC, generation=1, raw_status={})
    cs = deps.registry.get(REF.uid)
    assert cs is not None
    return deps, cs, clock


async def test_a_surge_scales_the_workers_up_with_an_event_and_history() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    snaps.next = snapshot(clock.t, backlog=2000, rate=80.0, current=1)
    await tick(deps, cs, 1)
    assert target.calls
    assert target.calls[-1] > 1
    assert cs.status.desired_replicas == target.calls[-1]
    assert cs.status.history[-1].kind == "scale"
    assert "ScaledUp" in kube.reasons()
    scaling = get_condition(cs.status.conditions, ConditionType.SCALING)
    assert scaling is not None
    assert scaling.reason == "ScalingUp"


async def test_unreachable_metrics_hold_the_size_and_say_why() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, _ = await _ready_cluster(kube, snaps, target)
    snaps.next = NatsUnavailableError("NATS at nats://n:4222 is reconnecting")
    await tick(deps, cs, 1)
    assert target.calls == []
    scaling = get_condition(cs.status.conditions, ConditionType.SCALING)
    assert scaling is not None
    assert "holding" in scaling.message


class Deposed:
    """A leader past its renew deadline (e.g. woken from a freeze after a standby won)."""

    token = 1

    def holds(self) -> bool:
        return False


async def test_a_leader_that_no_longer_holds_the_lease_writes_nothing() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    deps.leadership = Deposed()
    status_writes, levels = len(kube.status_patches), list(deps.js.levels)  # type: ignore[attr-defined]
    snaps.next = snapshot(clock.t, backlog=2000, rate=80.0, current=1)
    await tick(deps, cs, 1)
    assert target.calls == []  # the surge alone would scale up (the test above)
    assert len(kube.status_patches) == status_writes
    assert deps.js.levels == levels  # type: ignore[attr-defined]
    assert "ScaledUp" not in kube.reasons()


class DeposedMidTick:
    """Holds at the tick's first question, no longer at the next (frozen mid-tick)."""

    token = 1

    def __init__(self) -> None:
        self.asked = 0

    def holds(self) -> bool:
        self.asked += 1
        return self.asked == 1


async def test_a_leader_deposed_during_a_tick_does_not_write_its_stale_status() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    deps.leadership = DeposedMidTick()
    status_writes = len(kube.status_patches)
    snaps.next = snapshot(clock.t, backlog=2000, rate=80.0, current=1)
    await tick(deps, cs, 1)
    assert len(target.calls) == 1  # the scaling went out while it still held the Lease
    assert len(kube.status_patches) == status_writes


async def test_live_figures_are_written_at_most_once_per_interval() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    snaps.next = snapshot(clock.t, backlog=0, rate=0.0, current=1)
    await tick(deps, cs, 1)
    writes = len(kube.status_patches)
    for i in range(2, 5):  # backlog moves a little each tick, nothing else changes
        clock.t += 1
        snaps.next = snapshot(clock.t, backlog=i, rate=0.0, current=1)
        await tick(deps, cs, i)
    assert len(kube.status_patches) == writes
    clock.t += deps.config.status.interval_seconds
    snaps.next = snapshot(clock.t, backlog=9, rate=0.0, current=1)
    await tick(deps, cs, 9)
    assert len(kube.status_patches) == writes + 1
    assert kube.status_patches[-1]["backlog"] == 9


async def test_the_degradation_level_survives_an_operator_restart() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    cs.status = cs.status.model_copy(update={"degradation_level": 2})
    cs.scaling = None  # a fresh process: no policy memory, only status
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 1)
    assert cs.status.degradation_level == 2
    assert deps.js.levels[-1] == 2  # type: ignore[attr-defined]


async def test_the_spec_sheddable_classes_are_published_with_the_level() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 1)
    assert deps.js.sheddable[-1] == {"bulk"}  # type: ignore[attr-defined]
    published = len(deps.js.levels)  # type: ignore[attr-defined]
    clock.t += 1
    await tick(deps, cs, 2)
    assert len(deps.js.levels) == published  # type: ignore[attr-defined]  # nothing changed
    # normal marked sheddable: republished at the same level for workers and gateway
    cs.spec = cs.spec.model_copy(  # type: ignore[union-attr]
        update={
            "priorities": [
                PriorityClass(name=Priority.NORMAL, latency_target_seconds=10.0, sheddable=True)
            ]
        }
    )
    clock.t += 1
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 3)
    assert deps.js.sheddable[-1] == {"normal", "bulk"}  # type: ignore[attr-defined]
    assert deps.js.levels[-1] == 0  # type: ignore[attr-defined]


async def _cluster_with(autoscaling: dict[str, object]):  # type: ignore[no-untyped-def]
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    clock = Clock()
    deps = make_deps(kube, snapshots=snaps, target=target, clock=clock)
    spec = {**SPEC, "autoscaling": {**SPEC["autoscaling"], **autoscaling}}
    await reconcile(deps, REF, spec_raw=spec, generation=1, raw_status={})
    cs = deps.registry.get(REF.uid)
    assert cs is not None
    return deps, cs, clock, snaps, target


async def test_policy_keda_runs_the_keda_hpa_model_in_the_operator() -> None:
    # The same backlog of 2000: Surge drains it within the target (a big step at once),
    # KEDA asks ceil(2000 / lagThreshold 500) = 4, then holds until its next HPA sync.
    decisions = {}
    for policy in ("surge", "keda"):
        deps, cs, clock, snaps, target = await _cluster_with(
            {"policy": policy, "kedaLagThreshold": 500}
        )
        snaps.next = snapshot(clock.t, backlog=2000, rate=80.0, current=1)
        await tick(deps, cs, 1)
        first = cs.status.desired_replicas
        clock.t += 5
        snaps.next = snapshot(clock.t, backlog=6000, rate=80.0, current=first or 1)
        await tick(deps, cs, 2)
        decisions[policy] = (first, cs.status.desired_replicas, target.calls)
    assert decisions["keda"][0] == 4
    assert decisions["keda"][1] == 4  # between HPA syncs nothing changes
    assert decisions["surge"][0] == 10  # maxReplicas: the drain needs more than a step
    assert decisions["keda"][2] == [4]


async def test_switching_the_policy_starts_fresh_but_keeps_the_degradation_level() -> None:
    deps, cs, clock, snaps, _ = await _cluster_with({"policy": "surge"})
    cs.status = cs.status.model_copy(update={"degradation_level": 2})
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 1)
    assert cs.scaling[0] == "surge"
    assert cs.spec is not None
    cs.spec = cs.spec.model_copy(
        update={"autoscaling": cs.spec.autoscaling.model_copy(update={"policy": "keda"})}
    )
    clock.t += 1
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 2)
    assert cs.scaling[0] == "keda"
    assert cs.status.degradation_level == 0  # KEDA never degrades


async def test_the_expected_wait_is_published_every_tick_beside_the_level() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    for n in range(3):
        snaps.next = snapshot(clock.t, backlog=40, rate=5.0, current=1)
        await tick(deps, cs, n)
        clock.t += 1
    forecasts = deps.js.forecasts  # type: ignore[attr-defined]
    assert len(forecasts) == 3  # every tick, not only when the level changes
    assert all(f.level == cs.status.degradation_level for f in forecasts)
    assert all(f.classes for f in forecasts)


async def test_a_missing_consumer_holds_the_size_and_becomes_a_condition_until_it_is_back() -> None:
    kube, snaps, target = FakeKube(), FakeSnapshots(), FakeScaleTarget()
    deps, cs, clock = await _ready_cluster(kube, snaps, target)
    missing = "consumer surge-normal of stream SUPPORT does not exist"
    snaps.next = ConsumerMissingError(missing)
    await tick(deps, cs, 1)
    assert target.calls == [], "never a scale (KEDA #7657 scales to max here)"
    assert cs.status.desired_replicas == cs.workers.spec_replicas
    stream = get_condition(cs.status.conditions, ConditionType.STREAM_READY)
    assert stream is not None
    assert (stream.status, stream.reason) == ("False", "ConsumerMissing")
    assert missing in stream.message
    ready = get_condition(cs.status.conditions, ConditionType.READY)
    assert ready is not None
    assert ready.status == "False"
    assert kube.reasons().count("ConsumerMissing") == 1
    clock.t += 1
    await tick(deps, cs, 2)  # still missing: no second event
    assert kube.reasons().count("ConsumerMissing") == 1
    clock.t += 1
    snaps.next = snapshot(clock.t, backlog=5, rate=1.0, current=1)
    await tick(deps, cs, 3)
    stream = get_condition(cs.status.conditions, ConditionType.STREAM_READY)
    assert stream is not None
    assert (stream.status, stream.reason) == ("True", "StreamProvisioned")
