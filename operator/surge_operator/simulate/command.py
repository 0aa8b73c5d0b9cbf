"""What `surge simulate` and `surge bench autoscale` do, callable without the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError
from rich.console import Console

from surge_operator.api import MessagingClusterSpec
from surge_operator.simulate.compare import Comparison, compare, spec_policy
from surge_operator.simulate.engine import SimConfig
from surge_operator.simulate.report import (
    bench_rows,
    bench_table,
    comparison_json,
    plot,
    print_comparisons,
)
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
    profiles: Sequence[str], traces: Sequence[Path], seed: int, max_replicas: int | None = None
) -> list[Arrivals]:
    chosen: list[Arrivals] = []
    names = list(profiles) or ([] if traces else all_profile_names())
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
        chosen = [Arrivals(a.name, a.counts, max_replicas) for a in chosen]
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
    console: Console | None = None,
) -> list[Comparison]:
    sim = SimConfig(seed=seed)
    exact = spec_policy(load_spec(spec_path), sim) if spec_path is not None else None
    comparisons = [
        compare(a, sim, exact=exact) for a in gather_arrivals(profiles, traces, seed, max_replicas)
    ]
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


def bench(*, seed: int = 1, as_json: bool = False, console: Console | None = None) -> bool:
    """All bundled profiles; prints ratios vs KEDA and the oracle. True when goals are met."""
    comparisons = [compare(a, SimConfig(seed=seed)) for a in gather_arrivals([], [], seed)]
    rows = bench_rows(comparisons)
    if as_json:
        print(json.dumps({"seed": seed, "profiles": rows}, indent=2))
    else:
        (console or _console()).print(bench_table(comparisons))
    return all(row["goals_met"] for row in rows)
