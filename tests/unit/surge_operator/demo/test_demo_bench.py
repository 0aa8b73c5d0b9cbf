"""`surge bench replies`: figures over seeds and every miss, from the runs' summaries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest
from rich.console import Console

from surge_operator.demo.bench import SeedRun, as_json, over_seeds, report
from surge_operator.demo.honesty import Sample


def run(seed: int, median: float, p90: float, replies: int = 10) -> SeedRun:
    return SeedRun(
        seed=seed,
        replies_sent=replies,
        conversations=10,
        max_level=0,
        errors={"all": {"n": 10, "median": median, "p90": p90}},
        worst=(Sample("bulk", predicted=5.0, actual=1.0, msg_id="m", position=40),),
    )


def test_median_and_worst_over_seeds() -> None:
    runs = [run(1, 0.2, 0.8), run(2, 0.4, 1.2), run(3, 0.25, 0.9)]
    assert over_seeds(runs, "all", "median") == (0.25, 0.4)
    assert over_seeds(runs, "all", "p90") == (0.9, 1.2)
    assert over_seeds(runs, "bulk", "median") is None


def test_every_miss_is_printed_with_its_worst_promises() -> None:
    runs = [run(1, 0.2, 0.8), run(2, 0.4, 1.2), run(3, 0.1, 0.5, replies=9)]
    console = Console(record=True, width=200)
    report(runs, console)
    text = console.export_text()
    assert "goals met in 1 of 3 seeds" in text
    assert "MISS seed 2" in text
    assert "eta_error_median 0.4 > 0.3" in text
    assert "MISS seed 3" in text
    assert "replies_sent 9 < conversations 10" in text
    assert "MISS seed 1" not in text
    assert "predicted 5.00 s, waited 1.00 s (error 4.00)" in text
    assert [s["misses"] == [] for s in as_json(runs)["seeds"]] == [True, False, False]


def test_acknowledgements_that_promised_no_wait_are_printed_per_class() -> None:
    runs = [replace(run(1, 0.2, 0.8), unpromised={"bulk": 7, "normal": 1}), run(2, 0.1, 0.5)]
    console = Console(record=True, width=220)
    report(runs, console)
    assert "8 (bulk 7, normal 1)" in console.export_text()
    assert as_json(runs)["seeds"][0]["acks_without_prediction"] == {"bulk": 7, "normal": 1}


def test_the_command_runs_the_seeds_from_the_first_one_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from surge_operator.cli import app
    from surge_operator.demo import bench

    asked: list[int] = []

    def fake_run_seeds(seeds: Iterable[int], *_: object, **__: object) -> list[SeedRun]:
        asked.extend(seeds)
        return [run(seed, 0.2, 0.5) for seed in asked]

    monkeypatch.setattr(bench, "run_seeds", fake_run_seeds)
    result = CliRunner().invoke(app, ["bench", "replies", "--first-seed", "10", "--seeds", "3"])
    assert result.exit_code == 0, result.output
    assert asked == [10, 11, 12]
