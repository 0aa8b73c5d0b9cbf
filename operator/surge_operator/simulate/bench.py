"""`surge bench autoscale`: every profile over many seeds, median and worst, every miss.

Each (profile, seed) is one `compare` (Surge, KEDA at its default lagThreshold and a
sweep, the oracle, the LP bound); seeds run in worker processes when `jobs` > 1. Figures
are aggregated per profile as median and worst over the seeds (worst = the seed least
favourable to Surge), and every missed goal of every seed is listed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from surge_operator.simulate.compare import Comparison, compare
from surge_operator.simulate.engine import SimConfig
from surge_operator.simulate.traffic import load_arrivals


def _one(job: tuple[str, int]) -> Comparison:
    name, seed = job
    comparison = compare(load_arrivals(name, seed), SimConfig(seed=seed))
    return _without_series(comparison)


def _without_series(comparison: Comparison) -> Comparison:
    """Series are only for plots of single runs; dropping them keeps the pickles small."""
    from dataclasses import replace

    from surge_operator.simulate.engine import Series

    empty = Series((), (), (), (), (), (), ())
    results = {k: replace(v, series=empty) for k, v in comparison.results.items()}
    return replace(comparison, results=results)


def run_bench(
    profiles: Sequence[str], seeds: Sequence[int], *, jobs: int = 1
) -> dict[str, list[Comparison]]:
    jobs_list = [(name, seed) for name in profiles for seed in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(_one, jobs_list))
    else:
        done = [_one(job) for job in jobs_list]
    out: dict[str, list[Comparison]] = {name: [] for name in profiles}
    for comparison in done:
        out[comparison.profile].append(comparison)
    return out


@dataclass(frozen=True, slots=True)
class Spread:
    median: float | None
    worst: float | None

    def text(self, fmt: str = "{:.2f}") -> str:
        if self.median is None or self.worst is None:
            return "n/a"
        return f"{fmt.format(self.median)} ({fmt.format(self.worst)})"

    def json(self, digits: int = 3) -> dict[str, float | None]:
        return {
            "median": None if self.median is None else round(self.median, digits),
            "worst": None if self.worst is None else round(self.worst, digits),
        }


def spread(values: Sequence[float | None], *, higher_is_worse: bool = True) -> Spread:
    """Median and worst; a missing value (e.g. no reaction at all) is the worst."""
    known = [v for v in values if v is not None]
    if not known:
        return Spread(None, None)
    if len(known) < len(values):
        return Spread(statistics.median(known), None)
    return Spread(statistics.median(known), max(known) if higher_is_worse else min(known))


def _ratio(values: list[Comparison], key: str) -> Spread:
    return spread([c.ratios()[key] for c in values])


def profile_figures(values: list[Comparison]) -> dict[str, Any]:
    surge = [c.results["surge"] for c in values]
    keda = [c.results["keda"] for c in values]
    goals = [c.goals() for c in values]
    return {
        "seeds": [c.seed for c in values],
        "surge_reaction_s": spread([r.reaction_s for r in surge]).json(1),
        "keda_reaction_s": spread([r.reaction_s for r in keda]).json(1),
        "surge_violation_min": spread([r.violation_minutes["total"] for r in surge]).json(2),
        "keda_violation_min": spread([r.violation_minutes["total"] for r in keda]).json(2),
        "oracle_violation_min": spread(
            [c.results["oracle"].violation_minutes["total"] for c in values]
        ).json(2),
        "surge_refused": spread([float(r.refused_total) for r in surge]).json(0),
        "surge_pod_starts": spread([float(r.pod_starts) for r in surge]).json(0),
        "keda_pod_starts": spread([float(r.pod_starts) for r in keda]).json(0),
        "surge_replica_seconds": spread([r.replica_seconds for r in surge]).json(0),
        "keda_replica_seconds": spread([r.replica_seconds for r in keda]).json(0),
        "lower_bound_replica_seconds": spread(
            [c.bound.replica_seconds if c.bound else None for c in values],
            higher_is_worse=False,
        ).json(0),
        "replica_seconds_vs_keda": _ratio(values, "replica_seconds_vs_keda").json(),
        "replica_seconds_vs_oracle": _ratio(values, "replica_seconds_vs_oracle").json(),
        "replica_seconds_vs_lower_bound": _ratio(values, "replica_seconds_vs_lower_bound").json(),
        "goals_met_seeds": {
            goal: sum(1 for g in goals if g[goal]) for goal in (goals[0] if goals else {})
        },
        "seeds_all_goals_met": sum(1 for g in goals if all(g.values())),
        "keda_sweep_median": _sweep_medians(values),
        "runs": [c.summary() for c in values],
        "misses": [m for c in values for m in c.misses()],
    }


def _sweep_medians(values: list[Comparison]) -> list[dict[str, float]]:
    by_threshold: dict[float, list[tuple[float, float, int]]] = {}
    for c in values:
        for k in c.sweep:
            by_threshold.setdefault(k.lag_threshold, []).append(
                (k.violation_minutes, k.replica_seconds, k.refused)
            )
    return [
        {
            "lag_threshold": t,
            "violation_minutes": round(statistics.median(v for v, _, _ in rows), 2),
            "replica_seconds": round(statistics.median(r for _, r, _ in rows), 0),
            "refused": statistics.median(n for _, _, n in rows),
        }
        for t, rows in sorted(by_threshold.items())
    ]


def bench_json(results: dict[str, list[Comparison]]) -> dict[str, Any]:
    profiles = {name: profile_figures(values) for name, values in results.items()}
    misses = [m for figures in profiles.values() for m in figures["misses"]]
    return {"profiles": profiles, "misses": misses, "goals_met": not misses}


def bench_table(results: dict[str, list[Comparison]]) -> Table:
    seeds = max((len(v) for v in results.values()), default=0)
    table = Table(
        title=f"Autoscaling, {seeds} seeds per profile: median (worst). KEDA at lagThreshold 10 "
        "(its documented default); LB = LP lower bound",
        title_justify="left",
    )
    for column in (
        "profile",
        "reaction s\nsurge | keda",
        "violation min\nsurge | keda",
        "surge\nrefused",
        "surge replica-s\nvs keda",
        "vs oracle",
        "vs LB",
        "seeds with\nall goals",
    ):
        table.add_column(column, justify="left" if column == "profile" else "right")
    for name, values in results.items():
        f = profile_figures(values)

        def show(key: str, fmt: str = "{:.2f}", figures: dict[str, Any] = f) -> str:
            v = figures[key]
            return Spread(v["median"], v["worst"]).text(fmt)

        table.add_row(
            name,
            f"{show('surge_reaction_s', '{:.0f}')} | {show('keda_reaction_s', '{:.0f}')}",
            f"{show('surge_violation_min', '{:g}')} | {show('keda_violation_min', '{:g}')}",
            show("surge_refused", "{:,.0f}"),
            show("replica_seconds_vs_keda"),
            show("replica_seconds_vs_oracle"),
            show("replica_seconds_vs_lower_bound"),
            f"{f['seeds_all_goals_met']}/{len(values)}",
        )
    return table


def pareto_plot(results: dict[str, list[Comparison]], path: Path) -> None:
    """Violation minutes against replica-seconds per profile: KEDA's lagThreshold sweep
    (medians over seeds), Surge's point per seed and its median, the LP bound."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - optional extra
        raise RuntimeError("plotting needs matplotlib: pip install 'surge[bench]'") from err

    names = list(results)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for index, name in enumerate(names):
        ax = axes[index // cols][index % cols]
        values = results[name]
        sweep = _sweep_medians(values)
        ax.plot(
            [s["replica_seconds"] for s in sweep],
            [s["violation_minutes"] for s in sweep],
            "o-",
            color="tab:orange",
            label="KEDA lagThreshold sweep",
        )
        for s in sweep:
            ax.annotate(
                f"{s['lag_threshold']:g}",
                (s["replica_seconds"], s["violation_minutes"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
        surge = [c.results["surge"] for c in values]
        ax.scatter(
            [r.replica_seconds for r in surge],
            [r.violation_minutes["total"] for r in surge],
            color="tab:blue",
            alpha=0.35,
            s=14,
            label="Surge, each seed",
        )
        ax.scatter(
            [statistics.median(r.replica_seconds for r in surge)],
            [statistics.median(r.violation_minutes["total"] for r in surge)],
            color="tab:blue",
            marker="*",
            s=180,
            label="Surge, median",
        )
        bounds = [c.bound.replica_seconds for c in values if c.bound is not None]
        if bounds:
            ax.axvline(
                statistics.median(bounds), color="black", linestyle="--", linewidth=1,
                label="LP lower bound (median)",
            )  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("replica-seconds")
        ax.set_ylabel("violation minutes (refused work charged)")
        ax.set_yscale("symlog", linthresh=0.5)
        if index == 0:
            ax.legend(fontsize="x-small")
    for index in range(len(names), rows * cols):
        axes[index // cols][index % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


ProgressFn = Callable[[str], None]
