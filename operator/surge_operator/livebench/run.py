"""`surge bench autoscale --live`: a profile through the real pipeline, Surge then KEDA.

For each policy, on loopback: a fresh stream on one real nats-server, a real
`surge-gateway` process, real `surge-worker` processes started and stopped by the
engine through `ScrapedWorkers` (the ScaleTarget), a real Prometheus scraping them, and
the engine (`surge_operator.engine.Autoscaler`, the operator's loop) reading
`JetStreamMetricsSource` with the p95 query every tick. A replayer sends the profile
through the gateway, open loop.

The same counts then run through the simulator, configured as the live world measured
itself in this run (mean handling time from the workers' histogram, worker start-up
time from their readiness), and the two are printed side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nats
import structlog

from surge_operator.engine import Autoscaler
from surge_operator.livebench.arrivals import compress
from surge_operator.livebench.deployment import ScrapedWorkers
from surge_operator.livebench.measure import (
    replica_seconds,
    saturated_worker_rate,
    violation_minutes,
)
from surge_operator.livebench.replay import TENANT, Replayer, ReplayLog
from surge_operator.localprom import PrometheusServer, find_prometheus
from surge_operator.metrics_source import JetStreamMetricsSource, PrometheusQueries
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.engine import EngineConfig, Plan
from surge_operator.policy.select import (
    KEDA_DEFAULT_LAG_THRESHOLD,
    KedaPolicy,
    Policy,
    SurgePolicy,
    keda_config,
)
from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.scale_target import LocalProcessTarget, simulated_worker_env
from surge_operator.simulate.compare import scenario_policy
from surge_operator.simulate.engine import SimConfig, run
from surge_operator.simulate.traffic import Arrivals, load_arrivals
from surge_workers.contract import Env
from surge_workers.degradation import publish_degradation
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

log = structlog.get_logger("surge.livebench")

TOKEN = "live-bench-token"
PARTITIONS = 8
#: What a live figure may differ from its simulation by before it counts as a gap.
AGREEMENT = 0.20


class LiveBenchError(Exception):
    """The live set-up could not run (no Prometheus binary, a process did not start)."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    profile: str = "flash-surge"
    seed: int = 1
    #: Profile seconds per live second.
    speedup: int = 4
    #: Messages per second at the compressed profile's busiest five seconds.
    peak_rate: float = 120.0
    #: Each worker's handler: an awaited sleep of this long, then the default routing and
    #: transcript store (`surge_workers.handlers:simulated`, as in `surge demo`).
    work_ms: float = 100.0
    concurrency: int = 4
    max_replicas: int = 10
    #: Prometheus scrape interval: the simulator's default, so both see p95 as late.
    scrape_interval_s: float = 15.0


@dataclass(frozen=True, slots=True)
class Figures:
    violation_minutes: dict[str, float]
    replica_seconds: float
    reaction_s: float | None
    refused: int
    max_replicas: int
    #: Per tick: [t, replicas asked for, ready, backlog, arrivals/s, the decision's
    #: per-worker service rate, completions/s, waiting (not pulled)] (live runs only; for
    #: reading a gap).
    ticks: tuple[tuple[float, ...], ...] = ()

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "violation_minutes": self.violation_minutes,
            "replica_seconds": round(self.replica_seconds, 1),
            "reaction_s": self.reaction_s,
            "refused": self.refused,
            "max_replicas": self.max_replicas,
        }
        if self.ticks:
            out["ticks"] = [[round(v, 2) for v in row] for row in self.ticks]
        return out


@dataclass(frozen=True, slots=True)
class PolicyRun:
    policy: str
    live: Figures
    sim: Figures
    #: Measured in the live run and handed to the simulation.
    handling_s: float
    startup_s: float
    #: Per-worker capacity the simulation ran at: measured while saturated, or
    #: concurrency / handling time when the run never saturated its pool.
    worker_rate: float
    #: True when `worker_rate` was measured saturated (not derived from handling time).
    rate_measured: bool
    behind_s: float
    offered: int
    errors: int

    def gaps(self) -> list[str]:
        out = []
        for name, live, sim in (
            ("replica-seconds", self.live.replica_seconds, self.sim.replica_seconds),
            (
                "violation minutes",
                self.live.violation_minutes["total"],
                self.sim.violation_minutes["total"],
            ),
        ):
            if not agree(live, sim):
                out.append(f"{self.policy}: {name} live {live:g} vs simulated {sim:g}")
        return out


def agree(live: float, sim: float, *, tolerance: float = AGREEMENT) -> bool:
    """Within `tolerance` of the larger; two values both under one window (10 s) agree."""
    if max(live, sim) <= round(10 / 60, 2):
        return True
    return abs(live - sim) <= tolerance * max(live, sim)


def live_arrivals(options: LiveOptions) -> Arrivals:
    return compress(
        load_arrivals(options.profile, options.seed),
        speedup=options.speedup,
        peak_rate=options.peak_rate,
        max_replicas=options.max_replicas,
    )


def live_policy(arrivals: Arrivals, options: LiveOptions) -> PolicyConfig:
    """The documented defaults with this pipeline's pool bounds and worker concurrency
    (spec fields a user sets), no hints."""
    policy = scenario_policy(arrivals)
    return replace(policy, scaling=replace(policy.scaling, concurrency=options.concurrency))


def deciders(policy: PolicyConfig) -> dict[str, Policy[Any]]:
    """Fresh decision functions: Surge, and KEDA at its documented default."""
    return {
        "surge": SurgePolicy(),
        "keda": KedaPolicy(keda=keda_config(policy, KEDA_DEFAULT_LAG_THRESHOLD)),
    }


def p95_query(job: str) -> str:
    return (
        "histogram_quantile(0.95, sum by (priority, le) "
        f'(rate(surge_worker_queue_wait_seconds_bucket{{job="{job}"}}[1m])))'
    )


def _worker_env(url: str, stream: str, prefix: str, options: LiveOptions) -> dict[str, str]:
    return simulated_worker_env(
        url,
        stream=stream,
        prefix=prefix,
        partitions=PARTITIONS,
        cluster="live-bench",
        work_ms=options.work_ms,
        concurrency=options.concurrency,
        extra={Env.COMPOSER: "none"},
    )


def _gateway_env(url: str, stream: str, prefix: str, port: int, tokens: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            Env.NATS_URL: url,
            Env.STREAM: stream,
            Env.SUBJECT_PREFIX: prefix,
            Env.PARTITIONS: str(PARTITIONS),
            Env.HTTP_HOST: "127.0.0.1",
            Env.HTTP_PORT: str(port),
            Env.TOKENS_FILE: str(tokens),
            Env.RATE_LIMIT: "0",
            Env.INSTANCE: f"live-{stream}",
            Env.LOG_LEVEL: "error",
        }
    )
    return env


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, None, 1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def _wait_http(url: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(_ready, url):
        if time.monotonic() > deadline:
            raise LiveBenchError(f"{url} not ready within {within_s:.0f} s")
        await asyncio.sleep(0.2)


@dataclass(frozen=True, slots=True)
class _Publisher:
    """The live LevelPublisher: the level in the KV bucket the gateway and workers
    watch (as `surge demo` publishes it)."""

    js: Any
    stream: str

    async def publish(self, plan: Plan) -> None:
        if plan.level_changed:
            await publish_degradation(self.js, self.stream, plan.level, plan.decision.message)


async def run_live_policy(
    name: str,
    decider: Policy[Any],
    arrivals: Arrivals,
    policy: PolicyConfig,
    options: LiveOptions,
    *,
    nats_url: str,
    prometheus: PrometheusServer,
    workdir: Path,
) -> tuple[Figures, ReplayLog, list[float], float]:
    """One policy through the real pipeline; (figures, replay log, start-up times, mean
    handling seconds)."""
    stream, prefix = f"LIVE_{name.upper()}", f"live{name}"
    pipeline = PipelineConfig(stream=stream, subject_prefix=prefix, partitions=PARTITIONS)
    nc = await nats.connect(nats_url, name=f"surge-live-{name}")
    js = nc.jetstream()
    await provision_pipeline(js, pipeline)
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({TENANT: [TOKEN]}))
    port = free_port()
    gateway = subprocess.Popen(  # noqa: ASYNC220 - a child we own; spawning is quick
        [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
        env=_gateway_env(nats_url, stream, prefix, port, tokens),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    job = f"workers-{name}"
    workers = LocalProcessTarget(
        _worker_env(nats_url, stream, prefix, options), port_factory=free_port
    )
    target = ScrapedWorkers(workers, prometheus, time.monotonic, job=job)
    try:
        await _wait_http(f"http://127.0.0.1:{port}/readyz")
        service_rate = options.concurrency / (options.work_ms / 1000)
        opening = arrivals.counts[: min(30, arrivals.duration_s)]
        opening_rate = sum(sum(c.values()) for c in opening) / max(1, len(opening))
        initial = policy.scaling.bounded(math.ceil(opening_rate / service_rate))
        await target.scale(initial)
        deadline = time.monotonic() + 60
        while await target.ready() < initial:
            if time.monotonic() > deadline:
                raise LiveBenchError(f"{initial} workers not ready within 60 s")
            await asyncio.sleep(0.2)
        source = JetStreamMetricsSource(
            js, pipeline, prometheus=PrometheusQueries(prometheus.url, p95_query(job))
        )
        autoscaler = Autoscaler(
            source,
            target,
            _Publisher(js, stream),
            EngineConfig(policy=policy, decider=decider),
            time.monotonic,
            keep_ticks=False,
        )
        replayer = Replayer(f"http://127.0.0.1:{port}", TOKEN, nats_url, stream)
        started = time.monotonic()
        target.history[:] = [(started, initial)]
        replay = asyncio.create_task(replayer.run(arrivals))
        onset = arrivals.surge_onset()
        reaction: float | None = None
        next_tick = started
        ticks: list[tuple[float, ...]] = []
        while not replay.done():
            tick = await autoscaler.tick()
            at = time.monotonic() - started
            ticks.append(
                (
                    at,
                    tick.plan.replicas,
                    tick.ready,
                    tick.snapshot.total_backlog() if tick.snapshot.priorities else -1,
                    tick.snapshot.total_arrival_rate() if tick.snapshot.priorities else -1,
                    tick.decision.service_rate or 0.0,
                    tick.snapshot.completion_rate or 0.0,
                    tick.snapshot.waiting or 0,
                )
            )
            if reaction is None and at >= onset and tick.plan.replicas > tick.plan.current_replicas:
                reaction = round(max(0.0, at - onset), 2)
            next_tick += policy.scaling.tick_s
            await asyncio.wait([replay], timeout=max(0.0, next_tick - time.monotonic()))
        replay_log = replay.result()
        end = started + arrivals.duration_s
        # Completions of messages started before the end may still be in flight.
        await asyncio.sleep(options.work_ms / 1000 + 0.5)
        handling = _mean_handling(prometheus, job) or options.work_ms / 1000
        replay_log.finish(handling)
        targets = policy.scaling.latency_targets
        minutes = violation_minutes(
            replay_log.priorities, targets, duration_s=float(arrivals.duration_s)
        )
        cost = replica_seconds([(t - started, n) for t, n in target.history], end - started)
        duration = float(arrivals.duration_s)
        accepted = sum(len(replay_log.priorities[p].accepted) for p in PRIORITY_ORDER)
        served = sum(
            sum(1 for t, _ in replay_log.priorities[p].started if t <= duration)
            for p in PRIORITY_ORDER
        )
        refused = sum(
            1
            for p in PRIORITY_ORDER
            for _, _, ok in replay_log.priorities[p].retrying
            if ok == math.inf
        )
        # As the simulator charges it: work left undone at the end, at full speed.
        cost += (max(0, accepted - served) + refused) / (options.concurrency / handling)
        figures = Figures(
            violation_minutes=minutes,
            replica_seconds=cost,
            reaction_s=reaction,
            refused=refused,
            max_replicas=max(n for _, n in target.history),
            ticks=tuple(ticks),
        )
        return figures, replay_log, list(workers.startup_times), handling
    finally:
        await target.close()
        gateway.terminate()
        try:
            gateway.wait(10)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
        with contextlib.suppress(Exception):
            await nc.close()


def _mean_handling(prometheus: PrometheusServer, job: str) -> float | None:
    """Mean handler time the workers exported (sum / count of their histogram)."""
    query = (
        f'sum(surge_worker_handling_seconds_sum{{job="{job}"}}) / '
        f'sum(surge_worker_handling_seconds_count{{job="{job}"}})'
    )
    with contextlib.suppress(Exception):
        result = prometheus.query(query)
        if result:
            value = float(result[0]["value"][1])
            if math.isfinite(value) and value > 0:
                return value
    return None


def simulated(
    arrivals: Arrivals,
    decider: Policy[Any],
    policy: PolicyConfig,
    options: LiveOptions,
    *,
    worker_rate: float,
    startup_s: float,
) -> Figures:
    """The same counts through the simulator, its world set to what the live run
    measured (per-worker capacity, start-up time), no warm-up (the live run has none
    either)."""
    sim = SimConfig(
        service_rate=worker_rate,
        concurrency=options.concurrency,
        prefetch=4 * options.concurrency,
        pod_startup_s=startup_s,
        warmup_s=0,
        scrape_interval_s=options.scrape_interval_s,
        seed=options.seed,
    )
    result = run(arrivals, decider, sim, policy)
    return Figures(
        violation_minutes=dict(result.violation_minutes),
        replica_seconds=result.replica_seconds,
        reaction_s=result.reaction_s,
        refused=result.refused_total,
        max_replicas=result.max_replicas,
    )


async def run_live(options: LiveOptions) -> list[PolicyRun]:
    binary = find_prometheus()
    if binary is None:
        raise LiveBenchError(
            "prometheus not found (apt-get install prometheus, or make prometheus)"
        )
    arrivals = live_arrivals(options)
    policy = live_policy(arrivals, options)
    out = []
    with tempfile.TemporaryDirectory(prefix="surge-live-") as tmp:
        workdir = Path(tmp)
        server = NatsServer()
        prometheus = PrometheusServer(
            binary, workdir / "prometheus", scrape_interval_s=options.scrape_interval_s
        )
        try:
            server.start()
            prometheus.start()
            for name, decider in deciders(policy).items():
                log.info("live_policy_start", policy=name, seconds=arrivals.duration_s)
                live, replay, startups, handling = await run_live_policy(
                    name,
                    decider,
                    arrivals,
                    policy,
                    options,
                    nats_url=server.url,
                    prometheus=prometheus,
                    workdir=workdir,
                )
                startup = statistics.median(startups) if startups else 5.0
                # A worker's capacity is what it handled while saturated: handler time
                # plus pull, decode and ack around it. Concurrency over the handler's
                # mean time alone (used before) put it 20-35 % too high on this machine,
                # so the simulated pool was too small next to the real one.
                measured = saturated_worker_rate(
                    [(row[0], int(row[2]), row[6], int(row[7])) for row in live.ticks]
                )
                worker_rate = measured or options.concurrency / handling
                sim = simulated(
                    arrivals,
                    deciders(policy)[name],
                    policy,
                    options,
                    worker_rate=worker_rate,
                    startup_s=startup,
                )
                out.append(
                    PolicyRun(
                        policy=name,
                        live=live,
                        sim=sim,
                        handling_s=handling,
                        startup_s=startup,
                        worker_rate=worker_rate,
                        rate_measured=measured is not None,
                        behind_s=replay.behind_s,
                        offered=replay.offered,
                        errors=replay.errors,
                    )
                )
        finally:
            prometheus.stop()
            server.cleanup()
    return out


def live_json(options: LiveOptions, runs: list[PolicyRun]) -> dict[str, Any]:
    arrivals = live_arrivals(options)
    return {
        "profile": arrivals.name,
        "seed": options.seed,
        "duration_s": arrivals.duration_s,
        "options": {
            "speedup": options.speedup,
            "peak_rate": options.peak_rate,
            "work_ms": options.work_ms,
            "concurrency": options.concurrency,
            "max_replicas": options.max_replicas,
            "scrape_interval_s": options.scrape_interval_s,
        },
        "policies": {
            r.policy: {
                "live": r.live.json(),
                "simulated": r.sim.json(),
                "measured": {
                    "handling_s": round(r.handling_s, 4),
                    "worker_startup_s": round(r.startup_s, 2),
                    "worker_rate": round(r.worker_rate, 2),
                    "worker_rate_source": "saturated" if r.rate_measured else "handling",
                    "sender_behind_s": round(r.behind_s, 2),
                    "offered": r.offered,
                    "errors": r.errors,
                },
                "gaps": r.gaps(),
            }
            for r in runs
        },
        "gaps": [g for r in runs for g in r.gaps()],
    }
