"""What `surge simulate` and `surge bench autoscale` do, callable without the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml
from pydantic import ValidationError
from rich.console import Console

from surge_operator.api import MessagingClusterSpec
from surge_operator.policy.select import KEDA_DEFAULT_LAG_THRESHOLD
from surge_operator.simulate.bench import bench_json, bench_table, pareto_plot, run_bench
from surge_operator.simulate.compare import Comparison, compare, spec_policy
from surge_operator.simulate.engine import SimConfig
from surge_operator.simulate.report import comparison_json, plot, print_comparisons
from surge_operator.simulate.traffic import (
    Arrivals,
    all_profile_names,
    load_arrivals,
    read_trace,
)


def _console() -> Console:
    """Wide enough for the tables even when piped (README, CI logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


class UnknownProfileError(KeyError):
    """A profile name that is neither a bundled shape nor a bundled trace."""


class SpecError(ValueError):
    """A --spec file that is not a MessagingCluster (or its spec)."""


def load_spec(path: Path) -> MessagingClusterSpec:
    """A MessagingCluster manifest, or just its spec, from YAML or JSON."""
    try:
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "spec" in doc:
            doc = doc["spec"]
        return MessagingClusterSpec.model_validate(doc)
    except (yaml.YAMLError, ValidationError) as err:
        raise SpecError(f"{path}: {err}") from None


def gather_arrivals(
    profiles: Sequence[str],
    traces: Sequence[Path],
    seed: int,
    max_replicas: int | None = None,
    extra: Sequence[Arrivals] = (),
) -> list[Arrivals]:
    """The named profiles, the trace files and `extra` (e.g. a Prometheus history); every
    bundled profile when nothing is named."""
    chosen: list[Arrivals] = list(extra)
    names = list(profiles) or ([] if traces or extra else all_profile_names())
    for name in names:
        if name == "all":
            names.extend(n for n in all_profile_names() if n not in names)
            continue
        try:
            chosen.append(load_arrivals(name, seed))
        except KeyError:
            known = ", ".join(all_profile_names())
            raise UnknownProfileError(f"unknown profile {name!r}; known: {known}") from None
    for path in traces:
        chosen.append(read_trace(path, max_replicas=max_replicas or 60))
    if max_replicas is not None:
        chosen = [replace(a, max_replicas=max_replicas) for a in chosen]
    return chosen


def simulate(
    profiles: Sequence[str],
    traces: Sequence[Path],
    *,
    seed: int = 1,
    as_json: bool = False,
    plot_path: Path | None = None,
    max_replicas: int | None = None,
    spec_path: Path | None = None,
    keda_lag_threshold: float = KEDA_DEFAULT_LAG_THRESHOLD,
    extra: Sequence[Arrivals] = (),
    console: Console | None = None,
) -> list[Comparison]:
    sim = SimConfig(seed=seed)
    exact = spec_policy(load_spec(spec_path), sim) if spec_path is not None else None
    return report(
        [
            compare(a, sim, exact=exact, keda_lag_threshold=keda_lag_threshold)
            for a in gather_arrivals(profiles, traces, seed, max_replicas, extra)
        ],
        sim,
        as_json=as_json,
        plot_path=plot_path,
        console=console,
    )


def report(
    comparisons: list[Comparison],
    sim: SimConfig,
    *,
    as_json: bool = False,
    plot_path: Path | None = None,
    console: Console | None = None,
) -> list[Comparison]:
    out = console or _console()
    if as_json:
        docs = [comparison_json(c) for c in comparisons]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    else:
        print_comparisons(comparisons, sim, out)
    if plot_path is not None:
        plot(comparisons, plot_path)
        if not as_json:
            out.print(f"plot written to {plot_path}")
    return comparisons


def bench(
    *,
    seeds: Sequence[int],
    profiles: Sequence[str] = (),
    as_json: bool = False,
    jobs: int = 1,
    plot_path: Path | None = None,
    console: Console | None = None,
) -> bool:
    """Every bundled profile (or `profiles`) over `seeds`; prints median and worst and
    every miss. True when every goal is met on every seed."""
    known = all_profile_names()
    names = list(profiles) or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownProfileError(f"unknown profile {unknown[0]!r}; known: {', '.join(known)}")
    results = run_bench(names, seeds, jobs=jobs)
    doc = bench_json(results)
    out = console or _console()
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        out.print(bench_table(results))
        out.print(f"[bold]misses ({len(doc['misses'])}):[/bold]" if doc["misses"] else "no misses")
        for miss in doc["misses"]:
            out.print(f"  MISS {miss}", highlight=False)
    if plot_path is not None:
        pareto_plot(results, plot_path)
        if not as_json:
            out.print(f"Pareto plot written to {plot_path}")
    return bool(doc["goals_met"])
