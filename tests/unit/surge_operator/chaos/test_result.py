"""A scenario passes when it loses and doubles nothing; a control that expects a loss
(power loss with lazy fsync) passes only when the checker sees one."""

from __future__ import annotations

from surge_operator.chaos.checker import Effect, check
from surge_operator.chaos.result import Result

EFFECT_A = [Effect("a", "c", 0)]


def result(effects: list[Effect], *, expects_loss: bool) -> Result:
    return Result("s", check({"a", "b"}, effects, 0), 1.0, None, expects_loss=expects_loss)


def test_an_ordinary_scenario_fails_on_a_loss() -> None:
    assert not result(EFFECT_A, expects_loss=False).passed
    assert result([*EFFECT_A, Effect("b", "c", 1)], expects_loss=False).passed


def test_a_control_passes_only_when_the_checker_sees_its_loss() -> None:
    lossy = result(EFFECT_A, expects_loss=True)
    assert lossy.passed
    assert lossy.as_json()["expects_loss"] is True
    assert not result([*EFFECT_A, Effect("b", "c", 1)], expects_loss=True).passed


def test_a_control_with_a_double_effect_fails() -> None:
    assert not result([*EFFECT_A, *EFFECT_A], expects_loss=True).passed


def test_a_broken_invariant_outside_the_data_plane_fails_a_clean_run() -> None:
    clean = check({"a"}, EFFECT_A, 0)
    assert Result("s", clean, 1.0, None).passed
    broken = Result("s", clean, 1.0, None, violations=("replicas went down: [1, 3, 1]",))
    assert not broken.passed
    assert broken.as_json()["violations"] == ["replicas went down: [1, 3, 1]"]
