"""The id-by-id checker: it must catch a loss, a double effect and a reordering."""

from __future__ import annotations

from surge_operator.chaos.checker import Effect, check


def effects(*ids: tuple[str, str, int]) -> list[Effect]:
    return [Effect(i, c, p) for i, c, p in ids]


def test_a_clean_run_passes() -> None:
    verdict = check({"a", "b"}, effects(("a", "c1", 0), ("b", "c1", 1)), absorbed=3)
    assert verdict.ok
    assert (verdict.accepted, verdict.lost, verdict.double_effects) == (2, 0, 0)
    assert verdict.duplicates_absorbed == 3


def test_a_lost_message_is_named() -> None:
    verdict = check({"a", "b"}, effects(("a", "c1", 0)), absorbed=0)
    assert not verdict.ok
    assert (verdict.lost, verdict.lost_ids) == (1, ("b",))


def test_a_double_effect_is_counted_per_extra_effect() -> None:
    verdict = check({"a"}, effects(("a", "c1", 0), ("a", "c1", 0), ("a", "c1", 0)), absorbed=0)
    assert not verdict.ok
    assert (verdict.double_effects, verdict.doubled_ids) == (2, ("a",))


def test_per_conversation_order_is_checked_independently() -> None:
    ran = effects(("b", "c1", 1), ("x", "c2", 5), ("a", "c1", 0), ("y", "c2", 6))
    verdict = check({"a", "b", "x", "y"}, ran, absorbed=0)
    assert verdict.order_violations == 1
    assert verdict.ok  # order is reported, not a loss
