"""Pull planning: critical first and never starved, strict priority below it, degradation
shares, probes for drained classes, batching."""

from __future__ import annotations

from surge_workers.contract import PRIORITIES, DegradationLevel, Priority
from surge_workers.scheduling import ClassState, PullPlan, plan_pulls

C, N, B = Priority.CRITICAL, Priority.NORMAL, Priority.BULK


def plan(
    states: dict[Priority, ClassState] | None = None,
    level: DegradationLevel = DegradationLevel.NORMAL,
    served: tuple[Priority, ...] = PRIORITIES,
    sheddable: frozenset[Priority] = frozenset({B}),
) -> list[PullPlan]:
    return plan_pulls(
        states or {},
        served=served,
        level=level,
        capacity=100,
        low_water=50,
        max_batch=64,
        slots=100,
        sheddable=sheddable,
    )


def test_a_fresh_worker_asks_critical_and_normal_but_not_bulk_yet() -> None:
    assert plan() == [
        PullPlan(C, 64, no_wait=False),  # waits for critical work
        PullPlan(N, 64, no_wait=True),  # takes what normal has now
    ]


def test_bulk_is_asked_only_once_normal_is_drained() -> None:
    states = {C: ClassState(open_remaining=64), N: ClassState(idle=True)}
    assert plan(states) == [
        PullPlan(N, 1, no_wait=False, probe=True),  # watch normal
        PullPlan(B, 64, no_wait=True),
    ]


def test_busy_normal_holds_bulk_back() -> None:
    states = {C: ClassState(open_remaining=64), N: ClassState(open_remaining=40)}
    assert plan(states) == []


def test_critical_has_its_own_pool_when_the_main_pool_is_full() -> None:
    states = {N: ClassState(held=100)}
    assert plan(states) == [PullPlan(C, 64, no_wait=False)]


def test_no_small_requests_while_the_pool_is_busy() -> None:
    states = {C: ClassState(open_remaining=64), N: ClassState(held=70)}
    assert plan(states) == []  # 30 free < low water 50: wait for more room
    states = {C: ClassState(open_remaining=64), N: ClassState(held=40)}
    assert plan(states) == [PullPlan(N, 60, no_wait=True)]


def test_throttled_bulk_gets_a_quarter_of_the_pool() -> None:
    states = {C: ClassState(open_remaining=64), N: ClassState(idle=True, open_remaining=1)}
    (bulk,) = plan(states, DegradationLevel.THROTTLE_BULK)
    assert bulk.priority is B
    assert bulk.batch == 25


def test_shed_classes_are_not_pulled() -> None:
    states = {N: ClassState(idle=True), B: ClassState(idle=True)}
    assert [p.priority for p in plan(states, DegradationLevel.SHED_BULK)] == [C, N]
    assert [p.priority for p in plan(states, DegradationLevel.CRITICAL_ONLY)] == [C, N]
    # a class the spec marks sheddable is shed like bulk
    both = frozenset({N, B})
    assert [p.priority for p in plan(states, DegradationLevel.SHED_BULK, sheddable=both)] == [C]
    assert [p.priority for p in plan(states, DegradationLevel.CRITICAL_ONLY, sheddable=both)] == [C]


def test_at_level_three_normal_is_still_pulled_up_to_a_quarter_of_the_slots() -> None:
    level3 = DegradationLevel.CRITICAL_ONLY
    # critical keeps its waiting request; normal (not sheddable) gets a quarter of the slots
    assert plan({}, level3) == [PullPlan(C, 64, no_wait=False), PullPlan(N, 25, no_wait=True)]
    # ... and no more while it holds them, even with the rest of the worker idle
    assert plan({C: ClassState(open_remaining=64), N: ClassState(held=25)}, level3) == []
    assert plan({C: ClassState(open_remaining=64), N: ClassState(held=10)}, level3) == [
        PullPlan(N, 15, no_wait=True)
    ]
    # bulk (sheddable) is never asked for, even once normal is drained
    assert plan({C: ClassState(open_remaining=64), N: ClassState(idle=True)}, level3) == [
        PullPlan(N, 1, no_wait=False, probe=True)
    ]


def test_a_degraded_share_is_counted_in_handler_slots_not_prefetch() -> None:
    # 16 handlers + 64 prefetch: a quarter of the slots is 4 messages, not 20, so normal
    # takes at most a quarter of the worker's throughput at level 3.
    def level3(held: int) -> list[PullPlan]:
        return plan_pulls(
            {C: ClassState(open_remaining=64), N: ClassState(held=held)},
            served=PRIORITIES,
            level=DegradationLevel.CRITICAL_ONLY,
            capacity=80,
            low_water=40,
            max_batch=64,
            slots=16,
        )

    assert level3(0) == [PullPlan(N, 4, no_wait=True)]
    assert level3(4) == []
    # one handler slot still gets one message: a served class is never starved
    tiny = plan_pulls(
        {},
        served=PRIORITIES,
        level=DegradationLevel.CRITICAL_ONLY,
        capacity=1,
        low_water=1,
        max_batch=64,
        slots=1,
    )
    assert [(p.priority, p.batch) for p in tiny] == [(C, 1), (N, 1)]


def test_a_worker_serving_only_bulk_pulls_bulk() -> None:
    assert plan(served=(B,)) == [PullPlan(B, 64, no_wait=True)]


def test_requests_never_exceed_capacity() -> None:
    for held in range(0, 101, 7):
        for idle in (False, True):
            states = {N: ClassState(held=held, idle=idle), B: ClassState(held=0)}
            main = [p.batch for p in plan(states) if p.priority is not C]
            assert held + sum(main) <= 100


def test_a_full_batch_is_never_too_small() -> None:
    # A large prefetch puts low water (half the capacity) above max_batch: a full batch
    # must still be asked for while the worker is busy, not only once it has run dry.
    states = {N: ClassState(held=600)}
    plans = plan_pulls(
        states,
        served=(N,),
        level=DegradationLevel.NORMAL,
        capacity=1088,
        low_water=544,
        max_batch=256,
        slots=64,
    )
    assert plans == [PullPlan(N, 256, no_wait=True)]
    states = {N: ClassState(held=900)}  # room for 188 only: wait for more room
    assert (
        plan_pulls(
            states,
            served=(N,),
            level=DegradationLevel.NORMAL,
            capacity=1088,
            low_water=544,
            max_batch=256,
            slots=64,
        )
        == []
    )
