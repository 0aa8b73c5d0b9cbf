"""Render comparisons: rich tables, JSON documents, matplotlib plots. No simulation here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from surge_operator.api import Priority
from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.simulate.compare import POLICIES, Comparison
from surge_operator.simulate.engine import SimConfig

_SHORT = {Priority.CRITICAL: "c", Priority.NORMAL: "n", Priority.BULK: "b"}


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """One object per policy (reaction_s, violation_minutes, replica_seconds, max_backlog,
    shed, throttled, refused, ...), the KEDA lagThreshold sweep, the LP lower bound, and the
    ratios, goals and misses of this profile."""
    doc: dict[str, Any] = {
        "profile": comparison.profile,
        "seed": comparison.seed,
        "onset_s": comparison.onset_s,
    }
    for name in POLICIES:
        doc[name] = comparison.results[name].summary()
    doc["keda_sweep"] = [k.summary() for k in comparison.sweep]
    doc["lower_bound"] = comparison.bound.summary() if comparison.bound is not None else None
    ratios = comparison.ratios()
    doc["ratios"] = {k: round(v, 3) if v is not None else None for k, v in ratios.items()}
    doc["goals"] = comparison.goals()
    doc["misses"] = comparison.misses()
    doc["settings"] = comparison.settings
    return doc


def _per_priority(values: Mapping[str, int | float]) -> str:
    return " / ".join(f"{values.get(p.value, 0):g}" for p in PRIORITY_ORDER)


def comparison_table(comparison: Comparison) -> Table:
    table = Table(
        title=f"{comparison.profile} (surge onset at {comparison.onset_s:.0f} s)",
        title_justify="left",
    )
    table.add_column("policy")
    table.add_column("reaction s", justify="right")
    table.add_column("over target, min\nc / n / b", justify="right")
    table.add_column("total min", justify="right")
    table.add_column("replica-s", justify="right")
    table.add_column("max backlog", justify="right")
    table.add_column("max pods", justify="right")
    table.add_column("throttled\nc / n / b", justify="right")
    table.add_column("shed\nc / n / b", justify="right")
    table.add_column("refused", justify="right")
    for name in POLICIES:
        r = comparison.results[name]
        reaction = "n/a" if r.reaction_s is None else f"{r.reaction_s:.0f}"
        minutes = {k: v for k, v in r.violation_minutes.items() if k != "total"}
        table.add_row(
            name,
            reaction,
            _per_priority(minutes),
            f"{r.violation_minutes['total']:g}",
            f"{r.replica_seconds:,.0f}",
            f"{r.max_backlog:,}",
            str(r.max_replicas),
            _per_priority(r.throttled),
            _per_priority(r.shed),
            f"{r.refused_total:,}",
        )
    for point in comparison.sweep:
        table.add_row(
            f"keda lag {point.lag_threshold:g}",
            "",
            "",
            f"{point.violation_minutes:g}",
            f"{point.replica_seconds:,.0f}",
            "",
            "",
            "",
            "",
            f"{point.refused:,}",
        )
    if comparison.bound is not None:
        feasible = "" if comparison.bound.target_feasible else " (targets infeasible)"
        table.add_row(
            f"LP lower bound{feasible}", "", "", "", f"{comparison.bound.replica_seconds:,.0f}"
        )
    ratios = comparison.ratios()
    goals = comparison.goals()
    vk = ratios["violation_vs_keda"]
    missed = [k for k, v in goals.items() if not v]
    lb = ratios["replica_seconds_vs_lower_bound"]
    table.caption = (
        f"surge vs keda (lagThreshold default): violation {'-' if vk is None else f'{vk:.2f}x'}, "
        f"replica-s {ratios['replica_seconds_vs_keda']:.2f}x; "
        f"vs oracle: replica-s {ratios['replica_seconds_vs_oracle']:.2f}x; "
        f"vs LP lower bound: {'n/a' if lb is None else f'{lb:.2f}x'}; "
        f"goals {'MISSED: ' + ', '.join(missed) if missed else 'met'}"
    )
    table.caption_justify = "left"
    return table


def print_comparisons(comparisons: Sequence[Comparison], sim: SimConfig, console: Console) -> None:
    console.print(
        f"[dim]world: {sim.service_rate:g} msg/s per worker (jitter {sim.service_jitter:g}), "
        f"pod start-up {sim.pod_startup_s:g} s (+/-{sim.startup_jitter:.0%}), seed {sim.seed}; "
        f"p95 judged per {sim.window_s:g} s window[/dim]"
    )
    for comparison in comparisons:
        console.print(comparison_table(comparison))
        for name, values in comparison.settings.items():
            shown = ", ".join(f"{k} {v}" for k, v in values.items())
            console.print(f"[dim]  {name}: {shown}[/dim]")


def plot(comparisons: Sequence[Comparison], path: Path) -> None:
    """Arrivals, backlog, replicas and worst p95/target over time, one column per profile."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - optional extra
        raise RuntimeError("plotting needs matplotlib: pip install 'surge[plot]'") from err

    columns = len(comparisons)
    fig, axes = plt.subplots(4, columns, figsize=(5 * columns, 10), sharex="col", squeeze=False)
    for col, comparison in enumerate(comparisons):
        top = axes[0][col]
        any_series = comparison.results["surge"].series
        top.plot(any_series.t, any_series.arrivals, color="black", linewidth=0.8)
        top.set_title(comparison.profile)
        top.set_ylabel("arrivals msg/s")
        for name in POLICIES:
            series = comparison.results[name].series
            axes[1][col].plot(series.t, series.backlog, label=name, linewidth=0.9)
            axes[2][col].plot(series.t, series.replicas, label=name, linewidth=0.9)
            worst = [max(v.values(), default=0.0) for _, v in series.p95]
            axes[3][col].plot([t for t, _ in series.p95], worst, label=name, linewidth=0.9)
        axes[1][col].set_ylabel("backlog")
        axes[2][col].set_ylabel("replicas")
        axes[3][col].set_ylabel("worst p95 wait s")
        axes[3][col].set_yscale("symlog")
        axes[3][col].set_xlabel("t (s)")
        axes[1][col].legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
