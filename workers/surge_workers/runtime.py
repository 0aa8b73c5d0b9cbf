"""Process wiring shared by `surge-worker` and `surge-gateway`: connect, signals, run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from surge_workers.composer import load_composer
from surge_workers.consumer import Worker
from surge_workers.contract import Priority
from surge_workers.degradation import DegradationWatcher
from surge_workers.delivery import Delivery, load_handler
from surge_workers.handlers import route
from surge_workers.health import start_health_server
from surge_workers.honesty import METRICS_KEY
from surge_workers.intake import IntakeStage
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.natsclient import SurgeClient
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline
from surge_workers.reply_metrics import ComposerMetrics
from surge_workers.settings import NatsSettings, PipelineSettings, WorkerSettings
from surge_workers.templates import TemplateStore


async def connect(settings: NatsSettings, name: str, log: Any) -> Client:
    client = SurgeClient()

    async def on_error(err: Exception) -> None:
        log.warning("nats_error", error=str(err))

    async def on_disconnected() -> None:
        # Our own drain/close also disconnects: only an unplanned loss is worth a warning.
        if client.is_closed or client.is_draining:
            log.debug("nats_disconnected", planned=True)
        else:
            log.warning("nats_disconnected")

    async def on_reconnected() -> None:
        log.info("nats_reconnected")

    await client.connect(
        **settings.connect_options(),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    return client


async def connect_when_available(
    settings: NatsSettings, name: str, log: Any, stop: asyncio.Event
) -> Client | None:
    """Connect, retrying with back-off while NATS is unreachable (the health server is
    already up, not ready: no crash loop while NATS is down at start-up). None when
    ``stop`` is set first."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await connect(settings, name, log)
        except (OSError, TimeoutError, nats.errors.Error) as err:
            log.warning("nats_unavailable", retry_in=delay, error=str(err) or repr(err))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 10.0)
    return None


def stop_event() -> asyncio.Event:
    """Set on SIGTERM/SIGINT: the signal starts a drain instead of killing the process."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    return event


def pipeline_config(settings: PipelineSettings) -> PipelineConfig:
    return PipelineConfig(
        stream=settings.stream,
        subject_prefix=settings.subject_prefix,
        partitions=settings.partitions,
    )


async def _start_when_consumers_exist(worker: Worker, stop: asyncio.Event, log: Any) -> bool:
    """The operator provisions the pipeline; a worker that starts first waits for it."""
    delay = 0.5
    while not stop.is_set():
        try:
            await worker.start()
            return True
        except nats.js.errors.NotFoundError:
            log.info("waiting_for_consumers", retry_in=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 10.0)
    return False


class RecentHandling:
    """Mean handler time per priority over the last few seconds (what a message arriving
    now will take), from the worker's own handling histogram: the mean since start would
    carry the slow minutes of a past surge into every later promise. Until the first
    window is full the mean so far serves; None until this worker has handled anything
    (a worker that just started: the forecast's pool-wide figure applies, never 0 s)."""

    def __init__(self, metrics: WorkerMetrics, window_s: float = 5.0, min_samples: int = 5):
        self.metrics = metrics
        self.window_s = window_s
        self.min_samples = min_samples
        self._last: dict[Priority, tuple[float, float, float]] = {}  # at, sum, count
        self._mean: dict[Priority, float] = {}

    def _totals(self, priority: Priority) -> tuple[float, float]:
        labels = {"priority": priority.value}
        registry = self.metrics.registry
        total = registry.get_sample_value("surge_worker_handling_seconds_sum", labels) or 0.0
        count = registry.get_sample_value("surge_worker_handling_seconds_count", labels) or 0.0
        return total, count

    def __call__(self, priority: Priority) -> float | None:
        now = time.monotonic()
        total, count = self._totals(priority)
        last = self._last.get(priority)
        if last is None:
            self._last[priority] = (now, total, count)
        elif now - last[0] >= self.window_s and count - last[2] >= self.min_samples:
            self._mean[priority] = (total - last[1]) / (count - last[2])
            self._last[priority] = (now, total, count)
        if priority in self._mean:
            return self._mean[priority]
        return total / count if count else None


def intake_stage(
    nc: Client, settings: WorkerSettings, worker: Worker, watcher: DegradationWatcher, log: Any
) -> IntakeStage | None:
    """The composer's stage (None when SURGE_COMPOSER=none)."""
    if settings.composer is None:
        return None
    composer = load_composer(settings.composer)
    metrics = ComposerMetrics(worker.metrics.registry)
    worker.ctx.cache[METRICS_KEY] = metrics

    async def route_message(msg: Any, priority: Priority) -> str:
        return await route(Delivery(msg, priority), worker.ctx)

    return IntakeStage(
        nc,
        settings,
        composer,
        TemplateStore(settings.templates_dir, log=log),
        log=log,
        state=lambda: watcher.state,
        service_time=RecentHandling(worker.metrics),
        route=route_message,
        on_reply=metrics.replied,
    )


async def _start_intake(intake: IntakeStage, stop: asyncio.Event, log: Any) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            await intake.start()
            return
        except nats.js.errors.NotFoundError:
            log.info("waiting_for_intake_consumer", retry_in=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 10.0)


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> None:
    log = get_logger("worker", stream=settings.pipeline.stream, cluster=settings.pipeline.cluster)
    stop = stop or stop_event()
    handler = load_handler(settings.handler)
    metrics = WorkerMetrics()
    worker: Worker | None = None
    health = None
    if settings.metrics_port:
        # Health first: alive (and not ready) while NATS is still unreachable.
        health = await start_health_server(
            settings.metrics_host,
            settings.metrics_port,
            metrics.registry,
            lambda: worker is not None and worker.ready and worker.nc.is_connected,
        )
    nc = await connect_when_available(
        settings.nats, f"surge-worker/{settings.pipeline.cluster}", log, stop
    )
    if nc is None:
        if health is not None:
            await health.cleanup()
        log.info("worker_exited", connected=False)
        return
    worker = Worker(nc, settings, handler, metrics, log=log)
    watcher = DegradationWatcher(
        nc.jetstream(), settings.pipeline.stream, worker.on_degradation, log=log
    )
    watcher.start()
    intake = intake_stage(nc, settings, worker, watcher, log)
    try:
        if settings.provision:
            result = await provision_pipeline(nc.jetstream(), pipeline_config(settings.pipeline))
            log.info("pipeline_provisioned", summary=result.summary())
        if await _start_when_consumers_exist(worker, stop, log):
            if intake is not None:
                await _start_intake(intake, stop, log)
            await stop.wait()
            if intake is not None:
                await intake.stop()
            await worker.drain()
    finally:
        if intake is not None:
            await intake.stop()
        await watcher.stop()
        await worker.stop_background()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.drain()
        if health is not None:
            await health.cleanup()
        log.info("worker_exited")
