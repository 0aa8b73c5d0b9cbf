from surge_operator.chaos.soak import slope_per_minute


def test_slope_of_a_line_is_its_rise_per_minute() -> None:
    assert slope_per_minute([(t, 100 + 2 * t) for t in range(10)]) == 120.0


def test_flat_and_degenerate_series_have_no_slope() -> None:
    assert slope_per_minute([(t, 5.0) for t in range(10)]) == 0.0
    assert slope_per_minute([(1.0, 3.0)]) == 0.0
