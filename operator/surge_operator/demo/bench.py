"""`surge bench replies`: the promised waits over many seeds of `surge demo`.

One demo per seed (real workers, an embedded nats-server, the surge profile); each run's
every acknowledgement is judged as in the demo (:mod:`surge_operator.demo.honesty`).
Printed: a row per seed, the median and the worst over seeds, and every miss of the
goals (``eta_error_median <= 0.3``; every conversation acknowledged), with the run's
worst promises. Measured on whatever else the machine runs, so each row also shows the
degradation level the run reached: a loaded machine makes a harder run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console

from surge_operator.demo.honesty import GOAL_MEDIAN, Sample, worst
from surge_operator.demo.run import DemoOptions, DemoResult

CLASSES = ("all", "critical", "normal", "bulk")


@dataclass(frozen=True)
class SeedRun:
    seed: int
    replies_sent: int
    conversations: int
    max_level: int
    errors: dict[str, dict[str, float | int | None]]
    worst: tuple[Sample, ...] = ()
    #: Acknowledgements that promised no wait, per priority (not in the error figures).
    unpromised: dict[str, int] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        value = self.errors.get("all", {}).get("median")
        return None if value is None else float(value)

    @property
    def misses(self) -> list[str]:
        out = []
        if self.replies_sent < self.conversations:
            out.append(f"replies_sent {self.replies_sent} < conversations {self.conversations}")
        if self.median is None or self.median > GOAL_MEDIAN:
            out.append(f"eta_error_median {self.median} > {GOAL_MEDIAN}")
        return out


def seed_run(seed: int, result: DemoResult) -> SeedRun:
    summary = result.summary
    return SeedRun(
        seed=seed,
        replies_sent=summary.replies_sent,
        conversations=summary.conversations,
        max_level=summary.max_degradation_level,
        errors=summary.eta_error,
        worst=tuple(worst(result.honesty.samples)) if result.honesty else (),
        unpromised=dict(summary.acks_without_prediction_by_priority),
    )


def _figure(run: SeedRun, name: str, key: str) -> str:
    value = run.errors.get(name, {}).get(key)
    return "-" if value is None else f"{value:.3f}"


def _unpromised(run: SeedRun) -> str:
    total = sum(run.unpromised.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(run.unpromised.items())) + ")"


def over_seeds(runs: list[SeedRun], name: str, key: str) -> tuple[float, float] | None:
    """(median, worst) over seeds of one figure (worst = largest error)."""
    values = [float(v) for r in runs if (v := r.errors.get(name, {}).get(key)) is not None]
    if not values:
        return None
    return statistics.median(values), max(values)


def report(runs: list[SeedRun], console: Console) -> None:
    from rich.table import Table

    table = Table(title="promised waits: |predicted - actual| / actual, median / p90")
    for column in ("seed", "replies / conv.", "max level", *CLASSES, "no wait promised", "goal"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            str(run.seed),
            f"{run.replies_sent} / {run.conversations}",
            str(run.max_level),
            *(f"{_figure(run, c, 'median')} / {_figure(run, c, 'p90')}" for c in CLASSES),
            _unpromised(run),
            "MISS" if run.misses else "met",
        )
    console.print(table)
    for key in ("median", "p90"):
        parts = []
        for name in CLASSES:
            figures = over_seeds(runs, name, key)
            if figures is not None:
                parts.append(f"{name} {figures[0]:.3f} / {figures[1]:.3f}")
        console.print(f"{key} error over {len(runs)} seeds, median / worst: " + ", ".join(parts))
    missed = [run for run in runs if run.misses]
    console.print(f"goals met in {len(runs) - len(missed)} of {len(runs)} seeds")
    for run in missed:
        console.print(f"MISS seed {run.seed} (max level {run.max_level}): {'; '.join(run.misses)}")
        for sample in run.worst:
            console.print(
                f"  worst: {sample.priority} at position {sample.position}: predicted "
                f"{sample.predicted:.2f} s, waited {sample.actual:.2f} s (error {sample.error:.2f})"
            )


def run_seeds(
    seeds: Iterable[int],
    options: DemoOptions,
    run: Callable[[DemoOptions], DemoResult],
    console: Console,
    keep: Callable[[int, DemoResult], None] | None = None,
) -> list[SeedRun]:
    """One demo per seed, in turn (they would compete for the same cores); ``keep``
    sees each run's full result (`--record`)."""
    runs = []
    for seed in seeds:
        result = run(replace(options, seed=seed, live=False))
        if keep is not None:
            keep(seed, result)
        runs.append(seed_run(seed, result))
        console.print(
            f"seed {seed}: eta_error_median {runs[-1].median}, max level {runs[-1].max_level}"
        )
    return runs


def as_json(runs: list[SeedRun]) -> dict[str, Any]:
    return {
        "goal_median": GOAL_MEDIAN,
        "seeds": [
            {
                "seed": r.seed,
                "replies_sent": r.replies_sent,
                "conversations": r.conversations,
                "max_level": r.max_level,
                "eta_error": r.errors,
                "misses": r.misses,
                "acks_without_prediction": r.unpromised,
            }
            for r in runs
        ],
        "over_seeds": {
            key: {name: over_seeds(runs, name, key) for name in CLASSES}
            for key in ("median", "p90")
        },
    }
