"""The `surge` command line: parse arguments, call library code, render output. No logic here.

Local commands (demo, simulate, load, chaos, crds) live here; the benchmarks (`bench ...`)
in `cli_bench`, the commands that talk to a cluster (status, failback, drain-region,
check-install) in `cli_cluster`, the dead-letter commands (`dlq list|replay`, talking to
NATS) in `cli_dlq`. Exit codes are the same everywhere: 0 ok, 1 failure, 2 usage.

Each command imports its implementation lazily so `surge --help` stays fast and the
commands that need no cluster never import kopf or kubernetes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surge_operator import __version__
from surge_operator.backup.cli import backup_app
from surge_operator.backup.cli import restore as backup_restore
from surge_operator.cli_bench import bench_app
from surge_operator.cli_cluster import register as register_cluster_commands
from surge_operator.cli_dlq import dlq_app
from surge_workers.contract import Env

app = typer.Typer(
    name="surge",
    help="Surge: keep customer-support messaging alive through traffic surges.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(bench_app, name="bench")
app.add_typer(backup_app, name="backup")
app.command("restore")(backup_restore)
register_cluster_commands(app)
app.add_typer(dlq_app, name="dlq")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"surge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Surge: keep customer-support messaging alive through traffic surges."""


@app.command()
def chaos(
    short: bool = typer.Option(False, "--short", help="The CI form (seconds, not minutes)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of scenario objects."),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run just this scenario (repeatable); default all."),
    ] = None,
) -> None:
    """Fault scenarios on real components (nats-servers, worker and gateway processes, the
    failover controller, the operator against a local control plane); each ends with an
    id-by-id check (lost, double effects, order, duplicates absorbed)."""
    from surge_operator.chaos.command import chaos as run_chaos
    from surge_operator.chaos.lazyfs_mount import LazyMountError
    from surge_operator.chaos.suite import ScenarioUnavailableError, UnknownScenarioError

    try:
        output, ok = run_chaos(short=short, as_json=as_json, only=only or ())
    except (UnknownScenarioError, ScenarioUnavailableError, LazyMountError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(output)
    if not ok:
        raise typer.Exit(1)


@app.command()
def crds(
    markdown: bool = typer.Option(False, "--markdown", help="Print the field reference instead."),
) -> None:
    """Print the MessagingCluster CustomResourceDefinition generated from the models."""
    from surge_operator.crdgen import render_crd_yaml, render_reference_markdown

    typer.echo(render_reference_markdown() if markdown else render_crd_yaml(), nl=False)


@app.command()
def simulate(
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", "-p", help="Bundled profile (repeatable, or 'all')."),
    ] = None,
    trace: Annotated[
        list[Path] | None, typer.Option("--trace", help="Trace CSV: t,priority,count.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the runs.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="RNG seed (arrivals, pod speeds).")] = 1,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="Override the pool cap.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Simulate this MessagingCluster's autoscaling settings."),
    ] = None,
    keda_lag_threshold: Annotated[
        float,
        typer.Option("--keda-lag-threshold", min=0.001, help="Your KEDA lagThreshold."),
    ] = 10.0,
    from_prometheus: Annotated[
        str | None,
        typer.Option(
            "--from-prometheus",
            help="Replay your own arrivals: Prometheus URL (gateway offered counters).",
        ),
    ] = None,
    history_range: Annotated[
        str, typer.Option("--range", help="With --from-prometheus: how far back (e.g. 2h).")
    ] = "1h",
    history_end: Annotated[
        str | None, typer.Option("--end", help="End of the range (ISO 8601; default now).")
    ] = None,
    history_step: Annotated[
        float, typer.Option("--step", min=1.0, help="Query resolution in seconds.")
    ] = 1.0,
    history_query: Annotated[
        str | None,
        typer.Option("--query", help="PromQL of per-second rates with a priority label."),
    ] = None,
) -> None:
    """Replay traffic through Surge, KEDA+HPA (your lagThreshold, and a sweep), an oracle
    and the LP lower bound; compare latency, refused work and cost."""
    from surge_operator.prometheus_history import (
        HistoryError,
        parse_duration,
        parse_end,
        read_history,
    )
    from surge_operator.simulate.command import SpecError, UnknownProfileError
    from surge_operator.simulate.command import simulate as run_simulate
    from surge_operator.simulate.traffic import TraceError

    try:
        extra = []
        if from_prometheus is not None:
            extra.append(
                read_history(
                    from_prometheus,
                    range_s=parse_duration(history_range),
                    end=parse_end(history_end),
                    step_s=history_step,
                    query=history_query,
                    max_replicas=max_replicas or 60,
                )
            )
        run_simulate(
            profile or [],
            trace or [],
            seed=seed,
            as_json=as_json,
            plot_path=plot,
            max_replicas=max_replicas,
            spec_path=spec,
            keda_lag_threshold=keda_lag_threshold,
            extra=extra,
        )
    except (UnknownProfileError, TraceError, SpecError, HistoryError, OSError) as err:
        typer.echo(f"surge simulate: {err}", err=True)
        raise typer.Exit(2) from None


@app.command()
def load(
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            envvar=Env.NATS_URL,
            help="NATS to publish to (default nats://127.0.0.1:4222); with --gateway-url "
            "optional: only to measure end-to-end latency (workers with SURGE_COMPLETIONS).",
        ),
    ] = None,
    stream: Annotated[str, typer.Option("--stream", envvar=Env.STREAM)] = "surge",
    prefix: Annotated[str, typer.Option("--prefix", envvar=Env.SUBJECT_PREFIX)] = "surge",
    partitions: Annotated[int, typer.Option("--partitions", envvar=Env.PARTITIONS)] = 16,
    profile: Annotated[str, typer.Option("--profile", help="steady | surge | diurnal")] = "steady",
    rate: Annotated[float, typer.Option("--rate", help="Base arrivals per second.")] = 100.0,
    duration: Annotated[float, typer.Option("--duration", help="Seconds.")] = 30.0,
    surge_factor: Annotated[float, typer.Option("--surge-factor", help="Peak / base.")] = 5.0,
    mix: Annotated[
        str | None, typer.Option("--mix", help="e.g. critical=1,normal=6,bulk=3")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Approximate message bytes.")] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Replay a CSV: t,priority,conversation_id,...")
    ] = None,
    gateway_url: Annotated[
        str | None, typer.Option("--gateway-url", help="Send through a gateway, not NATS.")
    ] = None,
    tokens_file: Annotated[
        Path | None, typer.Option("--tokens-file", help="Gateway tokens (JSON tenant->tokens).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Open-loop load (steady / surge / diurnal / trace) with end-to-end latency per priority."""
    from surge_workers.commands import load as run

    raise typer.Exit(
        run(
            nats_url=nats_url,
            stream=stream,
            prefix=prefix,
            partitions=partitions,
            profile=profile,
            rate=rate,
            duration=duration,
            surge_factor=surge_factor,
            mix=mix,
            size=size,
            seed=seed,
            trace=trace,
            gateway_url=gateway_url,
            tokens_file=tokens_file,
            as_json=as_json,
        )
    )


@app.command()
def demo(
    duration: Annotated[float, typer.Option("--duration", help="Seconds of traffic.")] = 120.0,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Write the summary as JSON.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the run.")] = None,
    work_ms: Annotated[
        float, typer.Option("--work-ms", help="Simulated handling time per message.")
    ] = 100.0,
    max_replicas: Annotated[int, typer.Option("--max-replicas", help="Most workers.")] = 10,
    no_live: Annotated[bool, typer.Option("--no-live", help="No live dashboard.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the traffic.")] = 1,
) -> None:
    """Run the whole pipeline locally: NATS, workers, a traffic surge, live autoscaling."""
    import asyncio
    import logging

    import structlog
    from rich.console import Console

    from surge_operator.demo.run import (
        DemoOptions,
        plot_ticks,
        print_summary,
        run_demo,
        write_summary,
    )

    # The dashboard is the output; only warnings and errors may interrupt it.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console()
    options = DemoOptions(
        duration_s=duration,
        work_ms=work_ms,
        max_replicas=max_replicas,
        live=not no_live,
        seed=seed,
    )
    try:
        result = asyncio.run(run_demo(options, console))
    except KeyboardInterrupt:
        console.print("interrupted: workers drained, NATS stopped")
        raise typer.Exit(130) from None
    print_summary(result.summary, console, result.honesty)
    if summary_json is not None:
        write_summary(result.summary, summary_json)
    if plot is not None:
        plot_ticks(result.ticks, plot)


def main() -> None:
    app()
