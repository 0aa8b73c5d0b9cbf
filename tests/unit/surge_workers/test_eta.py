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
)


def test_the_next_message_waits_only_its_own_service_time() -> None:
    assert expected_wait(1, ClassForecast(ahead=0, capacity=40.0), service_s=0.1) == 0.1


def test_a_queue_drains_at_the_pool_rate() -> None:
    assert expected_wait(401, ClassForecast(ahead=400, capacity=40.0)) == pytest.approx(10.0)


def test_replicas_being_started_shorten_the_wait_after_their_start_up() -> None:
    forecast = ClassForecast(ahead=0, capacity=40.0, capacity_later=120.0, later_in_s=2.0)
    # 80 served in the first 2 s, the other 320 at 120/s.
    assert expected_wait(401, forecast) == pytest.approx(2.0 + 320 / 120)


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


def test_forecast_round_trips_and_garbage_decodes_to_none() -> None:
    forecast = Forecast(at=12.5, level=2, classes={Priority.NORMAL: ClassForecast(3, 7.5)})
    assert decode_forecast(encode_forecast(forecast)) == forecast
    for raw in (None, b"", b"[]", b"{", b'{"classes": 3}'):
        assert decode_forecast(raw) is None


def test_freshness() -> None:
    forecast = Forecast(at=100.0)
    assert forecast.fresh(105.0)
    assert not forecast.fresh(111.0)
