"""The live bench's table: simulated against measured, per policy, and every gap."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from surge_operator.livebench.run import AGREEMENT, LiveOptions, PolicyRun, agree, live_arrivals


def _pair(live: float, sim: float, fmt: str = "{:,.1f}") -> str:
    mark = "" if agree(live, sim) else "  GAP"
    return f"{fmt.format(sim)} | {fmt.format(live)}{mark}"


def print_live(options: LiveOptions, runs: list[PolicyRun], console: Console) -> None:
    arrivals = live_arrivals(options)
    table = Table(
        title=(
            f"Live: {arrivals.name} seed {options.seed}, {arrivals.duration_s} s, peak "
            f"{options.peak_rate:g} msg/s; simulated | measured (GAP: more than "
            f"{AGREEMENT:.0%} apart)"
        ),
        title_justify="left",
    )
    for column in (
        "policy",
        "violation min",
        "replica-s",
        "reaction s",
        "refused",
        "max replicas",
        "measured: handling s, worker msg/s, start-up s, sender late s",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for r in runs:
        table.add_row(
            r.policy,
            _pair(r.live.violation_minutes["total"], r.sim.violation_minutes["total"], "{:g}"),
            _pair(r.live.replica_seconds, r.sim.replica_seconds, "{:,.0f}"),
            f"{r.sim.reaction_s} | {r.live.reaction_s}",
            f"{r.sim.refused} | {r.live.refused}",
            f"{r.sim.max_replicas} | {r.live.max_replicas}",
            f"{r.handling_s:.3f}, {r.worker_rate:.1f}{'' if r.rate_measured else '*'}, "
            f"{r.startup_s:.1f}, {r.behind_s:.1f}",
        )
    console.print(table)
    by = {r.policy: r for r in runs}
    if "surge" in by and "keda" in by:
        s, k = by["surge"].live, by["keda"].live
        console.print(
            f"measured Surge vs KEDA (lagThreshold 10): violation min "
            f"{s.violation_minutes['total']:g} vs {k.violation_minutes['total']:g}, "
            f"replica-s {s.replica_seconds:,.0f} vs {k.replica_seconds:,.0f} "
            f"({s.replica_seconds / k.replica_seconds:.2f}x)",
            highlight=False,
        )
    if any(not r.rate_measured for r in runs):
        console.print("* never saturated: concurrency / handling time", highlight=False)
    gaps = [g for r in runs for g in r.gaps()]
    console.print(f"gaps ({len(gaps)}):" if gaps else "no gaps: simulated and measured agree")
    for gap in gaps:
        console.print(f"  GAP {gap}", highlight=False)
