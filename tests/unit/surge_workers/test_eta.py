"""The expected-wait model the composer applies to one message's position."""

from __future__ import annotations

import pytest

from surge_workers.contract import Priority
from surge_workers.eta import (
    ClassForecast,
    Forecast,
    decode_forecast,
    encode_forecast,
    expected_wait,
    forecast_classes,
    held_share,
)


def test_the_next_message_waits_only_its_own_service_time() -> None:
    assert expected_wait(1, ClassForecast(ahead=0, capacity=40.0), service_s=0.1) == 0.1


def test_a_queue_drains_at_the_pool_rate() -> None:
    assert expected_wait(401, ClassForecast(ahead=400, capacity=40.0)) == pytest.approx(10.0)


def test_replicas_being_started_shorten_the_wait_after_their_start_up() -> None:
    forecast = ClassForecast(ahead=0, capacity=40.0, capacity_later=120.0, later_in_s=2.0)
    # 80 served in the first 2 s, the other 320 at 120/s.
    assert expected_wait(401, forecast) == pytest.approx(2.0 + 320 / 120)


def test_replicas_being_started_come_up_in_the_steps_they_were_asked_for_in() -> None:
    # 2 ready replicas serve 20 msg/s each; the loop heads for 10, asking for 4 per 1-s
    # tick: 6 serve from 2 s on, all 10 from 3 s (the last step's start-up).
    forecast = ClassForecast(
        ahead=0,
        capacity=40.0,
        capacity_later=200.0,
        later_in_s=3.0,
        ready=2,
        step_replicas=4,
        step_s=1.0,
    )
    # 80 in the first 2 s, 120 in the next second, the other 200 at 200/s.
    assert expected_wait(401, forecast) == pytest.approx(3.0 + 200 / 200)
    # Within the first step's window nothing changes.
    assert expected_wait(41, forecast) == pytest.approx(1.0)
    # Steps unknown (an older publisher): all of them at 3 s, 120 then 280 at 200/s.
    at_once = ClassForecast(ahead=0, capacity=40.0, capacity_later=200.0, later_in_s=3.0)
    assert expected_wait(401, at_once) == pytest.approx(3.0 + 280 / 200)


def test_each_step_of_replicas_serves_only_the_share_left_after_higher_classes() -> None:
    forecast = ClassForecast(
        ahead=0,
        capacity=40.0,
        capacity_later=120.0,
        later_in_s=2.0,
        ready=2,
        step_replicas=2,
        step_s=1.0,
        higher_rate=30.0,
    )
    # 10 msg/s for 1 s, then 4 replicas (80 - 30) for 1 s, then 6 (120 - 30).
    assert expected_wait(151, forecast) == pytest.approx(2.0 + (150 - 10 - 50) / 90)


def test_arrivals_of_higher_classes_take_capacity_first() -> None:
    forecast = ClassForecast(ahead=0, capacity=40.0, higher_rate=30.0)
    assert expected_wait(101, forecast) == pytest.approx(10.0)


def test_an_unserved_class_gets_no_promise() -> None:
    assert expected_wait(5, ClassForecast(ahead=0, capacity=40.0, share=0.0)) is None
    assert expected_wait(5, ClassForecast(ahead=0, capacity=0.0)) is None


def test_forecasts_accumulate_the_backlog_of_earlier_classes() -> None:
    classes = forecast_classes(
        backlog={Priority.CRITICAL: 10, Priority.NORMAL: 90, Priority.BULK: 100},
        arrival_rate={Priority.CRITICAL: 5.0, Priority.NORMAL: 20.0},
        capacity=50.0,
        capacity_later=50.0,
        later_in_s=0.0,
        shares={Priority.BULK: 0.0},
    )
    assert classes[Priority.NORMAL].ahead == 100
    assert classes[Priority.NORMAL].higher_rate == 5.0
    assert classes[Priority.NORMAL].wait_s == pytest.approx(100 / 45, abs=1e-3)
    assert classes[Priority.BULK].wait_s is None


def test_a_newcomer_behind_fewer_messages_than_handlers_starts_at_once() -> None:
    # 2 replicas x 4 handlers: the 7 ahead run beside it.
    forecast = ClassForecast(ahead=7, capacity=40.0, ready=2)
    assert expected_wait(8, forecast, 0.1, concurrency=4) == pytest.approx(0.1)
    # 107 ahead: 100 must finish before a handler is free for it.
    assert expected_wait(108, forecast, 0.1, concurrency=4) == pytest.approx(100 / 40 + 0.1)
    # Without the workers' concurrency, every message ahead is queue.
    assert expected_wait(8, forecast, 0.1) == pytest.approx(7 / 40 + 0.1)


def test_handlers_held_by_classes_it_cannot_overtake_do_not_run_beside_a_newcomer() -> None:
    # 2 replicas x 4 handlers, half of them held by the main pool: 4 run beside it.
    half = ClassForecast(ahead=7, capacity=40.0, ready=2, held_share=0.5)
    assert expected_wait(8, half, 0.1, concurrency=4) == pytest.approx(4 / 40 + 0.1)
    assert expected_wait(4, half, 0.1, concurrency=4) == pytest.approx(0.1)
    # All of them held: it starts in the next handler to come free, behind the 7.
    held = ClassForecast(ahead=7, capacity=40.0, ready=2, held_share=1.0)
    assert expected_wait(8, held, 0.1, concurrency=4) == pytest.approx(7 / 40 + 0.1)
    # A share out of range is clamped, not a negative count of handlers.
    beyond = ClassForecast(ahead=7, capacity=40.0, ready=2, held_share=3.0)
    assert expected_wait(8, beyond, 0.1, concurrency=4) == pytest.approx(7 / 40 + 0.1)


def test_the_main_pool_holds_handlers_from_critical_up_to_each_class_share() -> None:
    backlog = {Priority.CRITICAL: 30, Priority.NORMAL: 90, Priority.BULK: 200}
    every = {p: 1.0 for p in Priority}
    assert held_share(Priority.CRITICAL, backlog, every, slots=40) == 1.0
    # Level 3: normal holds at most a quarter of the slots, bulk none.
    level3 = {Priority.CRITICAL: 1.0, Priority.NORMAL: 0.25, Priority.BULK: 0.0}
    assert held_share(Priority.CRITICAL, backlog, level3, slots=40) == pytest.approx(0.25)
    # No more than the main pool has unfinished.
    few = {Priority.NORMAL: 3, Priority.BULK: 2}
    assert held_share(Priority.CRITICAL, few, every, slots=40) == pytest.approx(5 / 40)
    # In the main pool a lower class is pulled only once the higher is drained.
    assert held_share(Priority.NORMAL, backlog, every, slots=40) == 0.0
    assert held_share(Priority.BULK, backlog, every, slots=40) == 0.0
    assert held_share(Priority.CRITICAL, backlog, every, slots=0) == 0.0


def test_critical_is_forecast_behind_the_handlers_the_main_pool_holds() -> None:
    classes = forecast_classes(
        backlog={Priority.CRITICAL: 5, Priority.NORMAL: 4, Priority.BULK: 0},
        arrival_rate={},
        capacity=80.0,
        capacity_later=0.0,
        later_in_s=0.0,
        shares={},
        ready=2,
        concurrency=4,
    )
    critical = classes[Priority.CRITICAL]
    assert critical.held_share == pytest.approx(0.5)
    # 8 handlers, 4 held by normal: a 6th critical message waits for 2 to finish, then
    # its own 8 / 80 s with a worker.
    assert critical.wait_s == pytest.approx(2 / 80 + 0.1, abs=1e-3)
    assert classes[Priority.NORMAL].held_share == 0.0


def test_a_worker_without_its_own_measurement_uses_the_pools_service_time() -> None:
    # 2 replicas serve 40 msg/s with 4 handlers each: 8 / 40 = 0.2 s per message.
    forecast = ClassForecast(ahead=0, capacity=40.0, ready=2)
    assert expected_wait(1, forecast, concurrency=4) == pytest.approx(0.2)
    assert expected_wait(1, forecast, 0.05, concurrency=4) == pytest.approx(0.05)


def test_the_promise_is_never_slower_than_the_measured_drain() -> None:
    # The model's share leaves 10 msg/s; the queue was measured moving at 50.
    stale = ClassForecast(ahead=0, capacity=40.0, share=0.25, drain_rate=50.0)
    assert expected_wait(501, stale) == pytest.approx(10.0)
    # A drain slower than the model's rate changes nothing.
    slow = ClassForecast(ahead=0, capacity=40.0, drain_rate=5.0)
    assert expected_wait(401, slow) == pytest.approx(10.0)
    # Replicas still starting add to the measured rate once ready.
    growing = ClassForecast(
        ahead=0, capacity=40.0, capacity_later=80.0, later_in_s=2.0, drain_rate=60.0
    )
    assert expected_wait(401, growing) == pytest.approx(2.0 + (400 - 120) / 100)


def test_forecast_round_trips_and_garbage_decodes_to_none() -> None:
    forecast = Forecast(
        at=12.5,
        level=2,
        classes={
            Priority.NORMAL: ClassForecast(
                3, 7.5, ready=4, drain_rate=12.5, wait_s=1.5, step_replicas=4, step_s=1.0
            ),
            Priority.CRITICAL: ClassForecast(1, 7.5, ready=4, held_share=0.75),
        },
    )
    assert decode_forecast(encode_forecast(forecast)) == forecast
    # An older publisher's document has no held share: none held.
    older = decode_forecast(b'{"at": 1, "classes": {"critical": {"ahead": 2, "capacity": 5}}}')
    assert older is not None
    assert older.classes[Priority.CRITICAL].held_share == 0.0
    for raw in (None, b"", b"[]", b"{", b'{"classes": 3}'):
        assert decode_forecast(raw) is None


def test_freshness() -> None:
    forecast = Forecast(at=100.0)
    assert forecast.fresh(105.0)
    assert not forecast.fresh(111.0)
