"""The measured drain per priority the forecast promises no slower than."""

from __future__ import annotations

import pytest

from surge_operator.api import Priority
from surge_operator.drain import HALF_LIFE_S, DrainMemory, position_rate, remember
from surge_operator.policy.types import PriorityMetrics, Snapshot


def snap(at: float, **classes: tuple[int, float]) -> Snapshot:
    return Snapshot(
        at=at,
        observed_at=at,
        priorities={
            Priority(name): PriorityMetrics(backlog=backlog, arrival_rate=rate)
            for name, (backlog, rate) in classes.items()
        },
        current_replicas=1,
        ready_replicas=1,
    )


def test_throughput_is_arrivals_minus_the_growth_of_the_backlog() -> None:
    memory = remember(None, snap(0.0, normal=(100, 50.0)))
    assert memory.served == {}  # one snapshot measures no drain
    memory = remember(memory, snap(1.0, normal=(80, 50.0)))
    # 50 arrived and the backlog fell by 20: 70 finished in that second.
    assert memory.served[Priority.NORMAL] == pytest.approx(70.0)


def test_rates_are_smoothed_with_the_half_life() -> None:
    memory = DrainMemory(
        at=0.0,
        backlog={Priority.NORMAL: 100},
        served={Priority.NORMAL: 10.0},
        arrivals={Priority.NORMAL: 10.0},
    )
    later = remember(memory, snap(HALF_LIFE_S, normal=(100, 30.0)))
    assert later.served[Priority.NORMAL] == pytest.approx(20.0)
    assert later.arrivals[Priority.NORMAL] == pytest.approx(20.0)


def test_a_class_moves_up_at_what_it_and_earlier_classes_finish_less_their_arrivals() -> None:
    memory = DrainMemory(
        at=0.0,
        served={Priority.CRITICAL: 20.0, Priority.NORMAL: 60.0, Priority.BULK: 5.0},
        arrivals={Priority.CRITICAL: 15.0, Priority.NORMAL: 100.0, Priority.BULK: 40.0},
    )
    assert position_rate(memory, Priority.CRITICAL) == pytest.approx(20.0)
    assert position_rate(memory, Priority.NORMAL) == pytest.approx(20.0 + 60.0 - 15.0)
    # Normal keeps arriving faster than the pool finishes it: bulk does not move.
    assert position_rate(memory, Priority.BULK) == 0.0
    assert position_rate(None, Priority.NORMAL) == 0.0


def test_a_snapshot_without_figures_keeps_the_memory() -> None:
    memory = remember(None, snap(0.0, normal=(10, 5.0)))
    kept = remember(memory, snap(1.0))
    assert kept.backlog == memory.backlog
    assert kept.at == 1.0
