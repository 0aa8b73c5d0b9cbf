"""Process wiring shared by `surge-worker` and `surge-gateway`: connect, signals, run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from surge_workers.consumer import Worker
from surge_workers.degradation import DegradationWatcher
from surge_workers.delivery import load_handler
from surge_workers.health import start_health_server
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline
from surge_workers.settings import NatsSettings, PipelineSettings, WorkerSettings


async def connect(settings: NatsSettings, name: str, log: Any) -> Client:
    client = Client()

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


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> None:
    log = get_logger("worker", stream=settings.pipeline.stream, cluster=settings.pipeline.cluster)
    stop = stop or stop_event()
    handler = load_handler(settings.handler)
    nc = await connect(settings.nats, f"surge-worker/{settings.pipeline.cluster}", log)
    metrics = WorkerMetrics()
    worker = Worker(nc, settings, handler, metrics, log=log)
    health = None
    if settings.metrics_port:
        health = await start_health_server(
            settings.metrics_host,
            settings.metrics_port,
            metrics.registry,
            lambda: worker.ready and nc.is_connected,
        )
    watcher = DegradationWatcher(
        nc.jetstream(), settings.pipeline.stream, worker.on_degradation, log=log
    )
    watcher.start()
    try:
        if settings.provision:
            result = await provision_pipeline(nc.jetstream(), pipeline_config(settings.pipeline))
            log.info("pipeline_provisioned", summary=result.summary())
        if await _start_when_consumers_exist(worker, stop, log):
            await stop.wait()
            await worker.drain()
    finally:
        await watcher.stop()
        await worker.stop_background()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.drain()
        if health is not None:
            await health.cleanup()
        log.info("worker_exited")
