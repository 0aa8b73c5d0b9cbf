"""Wire the demo together, run it, and summarise it. Everything stops in `finally`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats
import structlog
from nats.js import JetStreamContext
from rich.console import Console
from rich.live import Live

from surge_operator.demo.dashboard import render
from surge_operator.demo.honesty import GOAL_MEDIAN, Honesty, measure, summary_fields, worst
from surge_operator.demo.latency import LatencyTracker
from surge_operator.engine import Autoscaler, Tick
from surge_operator.metrics_source import JetStreamMetricsSource
from surge_operator.policy import (
    DegradationConfig,
    PolicyConfig,
    ScalingConfig,
)
from surge_operator.policy.engine import EngineConfig, Plan
from surge_operator.scale_target import LocalProcessTarget, simulated_worker_env
from surge_workers import contract
from surge_workers.degradation import publish_degradation
from surge_workers.eta import Forecast
from surge_workers.forecast_kv import publish_forecast
from surge_workers.load import LoadReport, LoadSpec, Target, arrivals, rate_at, run_load
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

log = structlog.get_logger("surge.demo")

STREAM = "SURGE_DEMO"
PREFIX = "demo"
PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Sized so the surge needs several workers yet fits two cores."""

    duration_s: float = 120.0
    #: Simulated handling time per message (an awaited sleep, like a downstream call).
    work_ms: float = 100.0
    concurrency: int = 4
    base_rate: float = 20.0
    surge_factor: float = 10.0
    min_replicas: int = 1
    max_replicas: int = 10
    tick_s: float = 1.0
    seed: int = 1
    live: bool = True
    #: After the traffic stops, wait at most this long for the queues to drain.
    drain_timeout_s: float = 60.0
    #: Distinct conversations in the traffic. An outage surge is mostly customers writing
    #: for the first time, so there are enough that new conversations keep arriving during
    #: the surge (and their acknowledgements' promised waits are tested under load).
    conversations: int = 4000

    def load(self) -> LoadSpec:
        """`surge load`'s surge profile: base rate, x factor from 20 % to 65 % of the run."""
        return LoadSpec(
            profile="surge",
            rate=self.base_rate,
            duration=self.duration_s,
            surge_factor=self.surge_factor,
            surge_start=0.2,
            surge_length=0.45,
            seed=self.seed,
            conversations=self.conversations,
        )

    def policy(self) -> PolicyConfig:
        per_worker = self.concurrency / (self.work_ms / 1000.0)
        return PolicyConfig(
            scaling=ScalingConfig(
                min_replicas=self.min_replicas,
                max_replicas=self.max_replicas,
                max_step=4,
                scale_down_stabilization_s=min(30.0, 0.2 * self.duration_s),
                pod_startup_s=1.5,
                service_rate_hint=per_worker,
                concurrency=self.concurrency,
                tick_s=self.tick_s,
            ),
            degradation=DegradationConfig(exit_after_s=min(30.0, 0.15 * self.duration_s)),
        )


@dataclass
class DemoSummary:
    reaction_s: float | None
    sent: int
    processed: int
    lost: int
    dead_letters: int
    p95_wait_s: dict[str, float | None]
    max_backlog: int
    max_replicas: int
    duration_s: float
    #: Still queued when the demo stopped waiting (drain timeout): not lost, not done.
    unfinished: int = 0
    sent_by_priority: dict[str, int] = field(default_factory=dict)
    #: Publishes JetStream did not acknowledge (not counted as sent).
    publish_errors: int = 0
    max_degradation_level: int = 0
    #: Acknowledgements + high-volume notices stored for customers (the composer).
    replies_sent: int = 0
    replies_by_kind: dict[str, int] = field(default_factory=dict)
    #: Distinct conversations with at least one processed message.
    conversations: int = 0
    #: Median of |predicted - actual| / actual over acknowledged messages.
    eta_error_median: float | None = None
    #: The same per priority (and "all"): n, median, p90.
    eta_error: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    acks_without_prediction: int = 0
    acks_without_prediction_by_priority: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def worker_env(url: str, options: DemoOptions) -> dict[str, str]:
    return simulated_worker_env(
        url,
        stream=STREAM,
        prefix=PREFIX,
        partitions=PARTITIONS,
        cluster="demo",
        work_ms=options.work_ms,
        concurrency=options.concurrency,
    )


async def _processed(js: JetStreamContext) -> int:
    """Unique messages processed: the transcript store keeps one entry per message id."""
    info = await js.stream_info(f"KV_{contract.transcripts_bucket(STREAM)}")
    return int(info.state.messages)


async def _dead_letters(js: JetStreamContext) -> int:
    with contextlib.suppress(Exception):
        info = await js.stream_info(contract.dead_letter_stream(STREAM))
        return int(info.state.messages)
    return 0


def _accepted(report: LoadReport) -> int:
    return sum(r.accepted for r in report.priorities.values())


def _reaction(ticks: list[Tick], surge_at: float) -> float | None:
    for tick in ticks:
        d = tick.decision
        if d.at >= surge_at and d.replicas > tick.snapshot.current_replicas:
            return round(float(d.at) - surge_at, 2)
    return None


@dataclass(frozen=True, slots=True)
class KvLevelPublisher:
    """The demo's LevelPublisher: the degradation KV bucket that workers, the gateway and
    the composer watch (the level on change, the expected wait every tick)."""

    js: JetStreamContext
    stream: str
    sheddable: frozenset[contract.Priority]

    async def publish(self, plan: Plan) -> None:
        if plan.level_changed:
            await publish_degradation(
                self.js, self.stream, plan.level, plan.decision.message, sheddable=self.sheddable
            )
        forecast = Forecast(at=time.time(), level=int(plan.level), classes=plan.expected_wait)
        await publish_forecast(self.js, self.stream, forecast)


@dataclass(frozen=True, slots=True)
class DemoResult:
    summary: DemoSummary
    ticks: list[Tick]
    honesty: Honesty | None = None
    #: Unix time minus the loop's monotonic clock: puts tick times beside message times.
    clock_offset: float = 0.0


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    console = console or Console()
    server = NatsServer()
    target: LocalProcessTarget | None = None
    nc = None
    tracker = LatencyTracker()
    load_task: asyncio.Task[LoadReport] | None = None
    try:
        server.start()
        nc = await nats.connect(server.url, name="surge-demo")
        js = nc.jetstream()
        pipeline = PipelineConfig(stream=STREAM, subject_prefix=PREFIX, partitions=PARTITIONS)
        await provision_pipeline(js, pipeline)
        await tracker.start(nc, STREAM)
        target = LocalProcessTarget(worker_env(server.url, options), port_factory=free_port)
        await target.scale(options.min_replicas)

        policy = options.policy()
        sheddable = frozenset(contract.Priority(p.value) for p in policy.degradation.sheddable)

        autoscaler = Autoscaler(
            source=JetStreamMetricsSource(js, pipeline),
            target=target,
            publisher=KvLevelPublisher(js, STREAM, sheddable),
            config=EngineConfig(policy=policy),
            clock=time.monotonic,
        )
        spec = options.load()
        surge_at = spec.surge_start * spec.duration
        surge_end = surge_at + spec.surge_length * spec.duration
        progress: list[LoadReport] = []

        def keep(report: LoadReport) -> None:
            # run_load updates one report in place: holding it gives live counts.
            if not progress:
                progress.append(report)

        # Let the first worker join before traffic starts (as a deployed pipeline would be).
        deadline = time.monotonic() + 15
        while await target.ready() < options.min_replicas and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a child process
            await asyncio.sleep(0.2)
        # `surge load`, in process: open loop, so arrivals never wait for the workers.
        load_task = asyncio.create_task(
            run_load(
                server.url,
                Target(stream=STREAM, subject_prefix=PREFIX, partitions=PARTITIONS),
                arrivals(spec),
                settle=0.0,
                on_progress=keep,
            )
        )
        started = time.monotonic()
        drain_deadline: float | None = None
        live = (
            Live(console=console, refresh_per_second=4, transient=False) if options.live else None
        )
        with live if live is not None else contextlib.nullcontext():
            next_tick = time.monotonic()
            while True:
                tick = await autoscaler.tick()
                elapsed = time.monotonic() - started
                if live is not None:
                    phase = "surge" if surge_at <= elapsed < surge_end else "base"
                    if load_task.done():
                        phase = "draining"
                    live.update(
                        render(
                            elapsed=elapsed,
                            duration=options.duration_s,
                            phase=phase,
                            offered_rate=0.0 if load_task.done() else rate_at(spec, elapsed),
                            sent=_accepted(progress[0]) if progress else 0,
                            completions=tracker.completions,
                            ticks=autoscaler.ticks,
                            p95={p.value: v for p, v in tracker.rolling_p95().items()},
                        )
                    )
                if load_task.done():
                    drain_deadline = drain_deadline or time.monotonic() + options.drain_timeout_s
                    drained = tick.snapshot.priorities and tick.snapshot.total_backlog() == 0
                    if drained or time.monotonic() > drain_deadline:
                        break
                next_tick += options.tick_s
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        report = load_task.result()
        # Completions are announced just after the ack; give the last ones a moment.
        await asyncio.sleep(0.5)
        processed = await _processed(js)
        final = await autoscaler.source.snapshot(
            at=time.monotonic(), current_replicas=0, ready_replicas=0
        )
        unfinished = final.total_backlog()
        dead = await _dead_letters(js)
        sent = _accepted(report)
        honesty = await measure(js, STREAM)
        backlogs = [t.snapshot.total_backlog() for t in autoscaler.ticks if t.snapshot.priorities]
        summary = DemoSummary(
            reaction_s=_reaction(autoscaler.ticks, started + surge_at),
            sent=sent,
            processed=processed,
            # Lost = accepted by JetStream but neither processed, still queued nor
            # dead-lettered.
            lost=max(0, sent - processed - unfinished - dead),
            dead_letters=dead,
            unfinished=unfinished,
            p95_wait_s={
                p.value: (None if v is None else round(v, 3))
                for p, v in tracker.overall_p95().items()
            },
            max_backlog=max(backlogs, default=0),
            max_replicas=max((t.decision.replicas for t in autoscaler.ticks), default=0),
            duration_s=round(time.monotonic() - started, 1),
            sent_by_priority={p.value: r.accepted for p, r in report.priorities.items()},
            publish_errors=report.errors,
            max_degradation_level=max(
                (int(t.decision.degradation_level) for t in autoscaler.ticks), default=0
            ),
            **summary_fields(honesty),
        )
        return DemoResult(
            summary, list(autoscaler.ticks), honesty, clock_offset=time.time() - time.monotonic()
        )
    finally:
        if load_task is not None and not load_task.done():
            load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await load_task
        if target is not None:
            await target.close()
        await tracker.stop()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        server.cleanup()


def print_summary(summary: DemoSummary, console: Console, honesty: Honesty | None = None) -> None:
    from rich.table import Table

    console.print()
    table = Table(title="surge demo summary", show_header=False)
    table.add_row("reaction to the surge", f"{summary.reaction_s} s")
    table.add_row(
        "sent / processed / lost", f"{summary.sent} / {summary.processed} / {summary.lost}"
    )
    table.add_row("dead letters / still queued", f"{summary.dead_letters} / {summary.unfinished}")
    table.add_row(
        "p95 wait (enqueue -> done)",
        ", ".join(f"{p} {v if v is not None else '-'} s" for p, v in summary.p95_wait_s.items()),
    )
    table.add_row("max backlog", str(summary.max_backlog))
    table.add_row("max replicas", str(summary.max_replicas))
    table.add_row("max degradation level", str(summary.max_degradation_level))
    table.add_row(
        "replies sent / conversations",
        f"{summary.replies_sent} / {summary.conversations} "
        f"({', '.join(f'{k} {v}' for k, v in summary.replies_by_kind.items()) or 'none'})",
    )
    for name, row in summary.eta_error.items():
        table.add_row(
            f"ETA error {name} (n={row['n']})",
            f"median {row['median']}  p90 {row['p90']}  (|predicted - actual| / actual)",
        )
    if summary.acks_without_prediction:
        per_class = ", ".join(
            f"{k} {v}" for k, v in summary.acks_without_prediction_by_priority.items()
        )
        table.add_row(
            "acks without a promised wait", f"{summary.acks_without_prediction} ({per_class})"
        )
    table.add_row("wall time", f"{summary.duration_s} s")
    console.print(table)
    print_goals(summary, console, honesty)


def print_goals(summary: DemoSummary, console: Console, honesty: Honesty | None = None) -> None:
    """The reply goals, measured: met or MISS, never hidden."""
    acked = summary.replies_sent >= summary.conversations
    console.print(
        f"goal replies_sent >= conversations: {summary.replies_sent} >= "
        f"{summary.conversations}: {'met' if acked else 'MISS'}"
    )
    median = summary.eta_error_median
    if median is None:
        console.print("goal eta_error_median <= 0.3: MISS (no acknowledgement promised a wait)")
    else:
        verdict = "met" if median <= GOAL_MEDIAN else "MISS"
        console.print(f"goal eta_error_median <= {GOAL_MEDIAN}: {median}: {verdict}")
    if honesty is not None:
        for sample in worst(honesty.samples):
            console.print(
                f"  worst: {sample.priority} {sample.msg_id} at position {sample.position}:"
                f" predicted {sample.predicted:.2f} s,"
                f" waited {sample.actual:.2f} s (error {sample.error:.2f})"
            )


def write_summary(summary: DemoSummary, path: Path) -> None:
    path.write_text(json.dumps(summary.to_json(), indent=2) + "\n")


def plot_ticks(ticks: list[Tick], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not ticks:
        return
    t0 = ticks[0].decision.at
    xs = [t.decision.at - t0 for t in ticks]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    axes[0].plot(xs, [t.snapshot.total_arrival_rate() for t in ticks])
    axes[0].set_ylabel("arrivals msg/s")
    axes[1].plot(xs, [t.snapshot.total_backlog() for t in ticks])
    axes[1].set_ylabel("backlog")
    axes[2].plot(xs, [t.decision.replicas for t in ticks], label="desired")
    axes[2].plot(xs, [t.ready for t in ticks], label="ready")
    axes[2].set_ylabel("workers")
    axes[2].set_xlabel("t (s)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
