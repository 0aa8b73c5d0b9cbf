"""`surge bench ...`: the benchmarks, each printing ratios against a baseline measured in
the same run. Registered by `surge_operator.cli`; like every command, each imports its
implementation lazily so `surge --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surge_operator.backup.cli import bench_backup

bench_app = typer.Typer(
    help="Benchmarks that print ratios against a baseline measured in the same run."
)
bench_app.command("backup")(bench_backup)


@bench_app.command("autoscale")
def bench_autoscale(
    as_json: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
    seeds: int = typer.Option(10, "--seeds", min=1, help="Seeds per profile (1..N)."),
    profile: Annotated[
        list[str] | None, typer.Option("--profile", "-p", help="Only these profiles.")
    ] = None,
    jobs: int = typer.Option(2, "--jobs", min=1, help="Worker processes for the seeds."),
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the Pareto plot (PNG).")
    ] = None,
    live: bool = typer.Option(
        False,
        "--live",
        help="Replay one profile through a real nats-server, gateway, workers and "
        "Prometheus on loopback (Surge, then KEDA), next to its simulation.",
    ),
    seed: int = typer.Option(1, "--seed", help="With --live: the profile's seed."),
    speedup: int = typer.Option(
        4, "--speedup", min=1, help="With --live: profile seconds per live second."
    ),
    peak_rate: float = typer.Option(
        120.0, "--peak-rate", min=1.0, help="With --live: msg/s at the busiest seconds."
    ),
) -> None:
    """Every bundled profile over many seeds: Surge vs KEDA (default lagThreshold and a
    sweep), the oracle and the LP lower bound; median and worst; every miss printed.
    With --live: one profile through the real pipeline, simulated against measured."""
    from surge_operator.simulate.command import UnknownProfileError, bench

    if live:
        _bench_live(profile, seed=seed, speedup=speedup, peak_rate=peak_rate, as_json=as_json)
        return
    try:
        bench(
            seeds=list(range(1, seeds + 1)),
            profiles=profile or [],
            as_json=as_json,
            jobs=jobs,
            plot_path=plot,
        )
    except UnknownProfileError as err:
        typer.echo(f"surge bench autoscale: {err}", err=True)
        raise typer.Exit(2) from None


def _bench_live(
    profile: list[str] | None, *, seed: int, speedup: int, peak_rate: float, as_json: bool
) -> None:
    import asyncio
    import json

    from rich.console import Console

    from surge_operator.livebench.report import print_live
    from surge_operator.livebench.run import LiveBenchError, LiveOptions, live_json, run_live
    from surge_workers.logs import configure

    # Progress to stderr, so --json stays one document on stdout.
    configure("warning")
    options = LiveOptions(seed=seed, speedup=speedup, peak_rate=peak_rate)
    if profile:
        options = LiveOptions(profile=profile[0], seed=seed, speedup=speedup, peak_rate=peak_rate)
    try:
        runs = asyncio.run(run_live(options))
    except (LiveBenchError, KeyError) as err:
        typer.echo(f"surge bench autoscale --live: {err}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(live_json(options, runs), indent=2))
    else:
        print_live(options, runs, Console(width=160))


@bench_app.command("replies")
def bench_replies(
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Demo runs: N seeds from --first-seed.")
    ] = 5,
    first_seed: Annotated[
        int,
        typer.Option("--first-seed", help="First seed (report on seeds a model was not tuned on)."),
    ] = 1,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of traffic.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Write each run's ticks, forecasts and judged acknowledgements to "
            "DIR/seed-N.json (re-judge a model on the same waits: surge bench replay).",
        ),
    ] = None,
) -> None:
    """`surge demo` over many seeds: the promised waits' error per seed, median and worst
    over seeds, every miss of the goals printed."""
    import asyncio
    import json as _json
    import logging
    from functools import partial

    import structlog
    from rich.console import Console

    from surge_operator.demo.bench import as_json as bench_json
    from surge_operator.demo.bench import report, run_seeds
    from surge_operator.demo.record import write_record
    from surge_operator.demo.run import DemoOptions, run_demo

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console(stderr=as_json)
    runs = run_seeds(
        range(first_seed, first_seed + seeds),
        DemoOptions(duration_s=duration),
        lambda options: asyncio.run(run_demo(options, console)),
        console,
        keep=None if record is None else partial(write_record, record),
    )
    if as_json:
        typer.echo(_json.dumps(bench_json(runs), indent=2))
    else:
        report(runs, console)


@bench_app.command("replay")
def bench_replay(
    records: Annotated[
        list[Path], typer.Argument(help="seed-N.json files written by `bench replies --record`.")
    ],
    phases: Annotated[
        bool, typer.Option("--phases", help="Also break the error down by phase of the surge.")
    ] = False,
) -> None:
    """Re-judge recorded runs with the model as it is now, on the very same waits: the
    promise each run made beside the one this model makes, per seed and over seeds."""
    from rich.console import Console

    from surge_operator.demo.replay import load, print_replay

    print_replay(load(records), Console(width=160), phases=phases)


@bench_app.command("operator")
def bench_operator(
    clusters: Annotated[
        int, typer.Option("--clusters", min=1, help="MessagingClusters to create.")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Use this cluster, not a fresh local control plane."),
    ] = None,
) -> None:
    """Converge N MessagingClusters on a real API server: time, operator memory, writes."""
    from surge_operator.bench_operator import render, run_bench

    result = run_bench(clusters, kubeconfig=kubeconfig)
    typer.echo(render(result, as_json))
    if not result.passed:
        raise typer.Exit(1)


@bench_app.command("nats")
def bench_nats(
    messages: Annotated[int, typer.Option("--messages", min=100, help="Per run.")] = 20_000,
    size: Annotated[int, typer.Option("--size", min=16, help="Message bytes.")] = 1024,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Runs per figure.")] = 3,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="Bench on this cluster (the chart installed, rbac.secretNamespaces covering "
            "--namespace); without it, on a fresh local cluster with real nodes.",
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", help="Where the bench runs (made and removed if absent).")
    ] = "surge-bench-nats",
    image: Annotated[
        str | None,
        typer.Option("--image", help="The surge-bench image (surge + natscli) the nodes pull."),
    ] = None,
    gateways: Annotated[
        int, typer.Option("--gateways", min=1, help="On a cluster: gateway pods.")
    ] = 1,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="On a cluster: worker pods.")
    ] = 1,
    loopback: Annotated[
        bool,
        typer.Option(
            "--loopback", help="No Kubernetes: the generated config on nats-servers on loopback."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """fsync always vs lazy and R3 vs R1 with `nats bench`, on the NATS Surge's operator
    runs; Surge end to end (gateway -> stream -> worker) as a fraction of it."""
    import json as _json
    import tempfile

    from surge_operator.natsbench.incluster import BENCH_IMAGE, run_kubeconfig, run_local
    from surge_operator.natsbench.kubectl import ClusterBenchError
    from surge_operator.natsbench.loopback import run_loopback
    from surge_operator.natsbench.manifests import Shape
    from surge_operator.natsbench.result import render

    shape = Shape(gateways=gateways, workers=workers)
    try:
        if loopback:
            result = run_loopback(messages, size, rounds)
        elif kubeconfig is not None:
            result = run_kubeconfig(
                kubeconfig,
                namespace=namespace,
                image=image or BENCH_IMAGE,
                messages=messages,
                size=size,
                rounds=rounds,
                shape=shape,
            )
        else:
            with tempfile.TemporaryDirectory(prefix="surge-bench-nats-") as tmp:
                result = run_local(messages, size, rounds, Path(tmp), shape)
    except ClusterBenchError as err:
        typer.echo(f"surge bench nats: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(_json.dumps(result.as_dict(), indent=2) if as_json else render(result))


@bench_app.command("dataplane")
def bench_dataplane(
    messages: Annotated[int, typer.Option("--messages", min=100, help="Per round.")] = 20_000,
    size: Annotated[int, typer.Option("--size", min=16, help="Message bytes.")] = 1024,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Paired rounds.")] = 3,
    nats_url: Annotated[
        str | None, typer.Option("--nats-url", help="Use this server, not a fresh one.")
    ] = None,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Skip the gateway.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Worker and gateway throughput as ratios to bare nats-py loops on the same server."""
    from surge_workers.commands import bench_dataplane as run

    code = run(
        messages=messages,
        size=size,
        rounds=rounds,
        nats_url=nats_url,
        as_json=as_json,
        gateway=not no_gateway,
    )
    raise typer.Exit(code)
