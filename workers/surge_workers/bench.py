"""`surge bench dataplane`: data-plane throughput as ratios to bare nats-py loops.

One run, one nats-server (file storage, loopback), 1 KiB messages by default:

worker_ratio
    `surge-worker` engine with the ``noop`` handler (the fair comparison: a bare loop does
    no work either) ÷ a bare nats-py loop ``fetch(batch=100)`` + ``ack()`` over the same
    number of messages from the same stream.
gateway_ratio
    `surge-gateway` ingest over HTTP (batch endpoint, the gateway in its own process)
    ÷ the fastest bare nats-py publisher: a ``js.publish_async(...)`` pipeline with the
    same headers, all acks awaited. Both wait for the JetStream ack of every message
    before counting it stored. A one-at-a-time ``await js.publish(...)`` loop is reported
    as context (``gateway_vs_publish_ratio``); it is far slower and would flatter the gateway.
    Also context: the gateway's own publisher (``JetStreamPublisher``: one wait per batch
    instead of a future per message) without HTTP, same batches and concurrency, which is
    the ceiling the gateway's HTTP + validation work is measured against
    (``gateway_vs_batch_publisher_ratio``).

Each round runs the bare consume loop and then the worker over fresh messages;
``worker_ratio`` is the median of the per-round ratios (paired, so background load on a
shared machine hits both sides); rates shown are the best round of each. The gateway is
measured the same way: each round runs the publish_async baseline and then the gateway
batch POSTs, and ``gateway_ratio`` is the median of those paired ratios. Also reported
for context: a one-at-a-time ``js.publish`` loop, the gateway's publisher without HTTP,
the single-message gateway endpoint and the worker running the default handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from surge_workers.consumer import Worker
from surge_workers.contract import (
    Env,
    Priority,
    consumer_name,
    format_enqueued_at,
    message_headers,
    message_subject,
)
from surge_workers.delivery import Handler
from surge_workers.handlers import noop, route_and_store
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline
from surge_workers.settings import PipelineSettings, WorkerSettings

STREAM = "BENCH"
PREFIX = "bench"
TENANT = "bench"
TOKEN = "bench-token"


@dataclass
class BenchResult:
    messages: int
    size: int
    rounds: int
    bare_consume_rate: float = 0.0
    worker_rate: float = 0.0
    worker_ratio: float = 0.0
    worker_round_ratios: list[float] = field(default_factory=list)
    bare_publish_rate: float = 0.0
    gateway_rate: float = 0.0
    gateway_ratio: float = 0.0
    gateway_round_ratios: list[float] = field(default_factory=list)
    bare_publish_async_rate: float = 0.0
    gateway_vs_publish_ratio: float = 0.0
    batch_publisher_rate: float = 0.0
    gateway_vs_batch_publisher_ratio: float = 0.0
    gateway_single_rate: float = 0.0
    worker_default_handler_rate: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _headers(i: int, run: str) -> dict[str, str]:
    return message_headers(
        tenant=TENANT,
        msg_id=f"{run}-{i}",
        conversation_id=f"c{i % 997}",
        priority=Priority.NORMAL,
        enqueued_at=format_enqueued_at(time.time()),
    )


async def bare_publish(nc: Client, count: int, payload: bytes, run: str) -> float:
    js = nc.jetstream()
    started = time.perf_counter()
    for i in range(count):
        subject = message_subject(PREFIX, Priority.NORMAL, f"c{i % 997}", 16, tenant=TENANT)
        await js.publish(subject, payload, headers=_headers(i, run))
    return count / (time.perf_counter() - started)


async def bare_publish_async(nc: Client, count: int, payload: bytes, run: str) -> float:
    js = nc.jetstream()
    started = time.perf_counter()
    futures = []
    for i in range(count):
        subject = message_subject(PREFIX, Priority.BULK, f"c{i % 997}", 16, tenant=TENANT)
        futures.append(await js.publish_async(subject, payload, headers=_headers(i, run)))
    await asyncio.gather(*futures)
    return count / (time.perf_counter() - started)


async def batch_publisher(
    nc: Client, count: int, payload: bytes, run: str, *, batch: int = 100, parallel: int = 4
) -> float:
    """The gateway's publisher without HTTP: ``parallel`` tasks, ``batch`` messages each
    call, the same headers as the bare loops, every ack awaited."""
    from surge_workers.gateway import JetStreamPublisher

    publisher = JetStreamPublisher(nc)
    starts = iter(range(0, count, batch))

    async def sender() -> None:
        for start in starts:
            await publisher.publish(
                [
                    (
                        message_subject(PREFIX, Priority.BULK, f"c{i % 997}", 16, tenant=TENANT),
                        payload,
                        _headers(i, run),
                    )
                    for i in range(start, min(start + batch, count))
                ]
            )

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(parallel)))
    return count / (time.perf_counter() - started)


async def bare_consume(nc: Client, count: int, start_seq: int, name: str) -> float:
    js = nc.jetstream()
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            name=name,
            durable_name=name,
            filter_subject=f"{PREFIX}.normal.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            max_ack_pending=10_000,
        ),
    )
    sub = await js.pull_subscribe_bind(name, stream=STREAM)
    done = 0
    started = time.perf_counter()
    while done < count:
        msgs = await sub.fetch(100, timeout=5)
        for msg in msgs:
            await msg.ack()
        done += len(msgs)
    await nc.flush()
    return count / (time.perf_counter() - started)


async def worker_consume(
    nc: Client, count: int, settings: WorkerSettings, handler: Handler = noop
) -> float:
    metrics = WorkerMetrics()
    worker = Worker(nc, settings, handler, metrics, log=get_logger("bench"))
    before = metrics.processed_count(Priority.NORMAL, "ok")
    started = time.perf_counter()
    await worker.start()
    while metrics.processed_count(Priority.NORMAL, "ok") - before < count:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # polling a counter costs the worker less than an event per msg
    elapsed = time.perf_counter() - started
    await worker.drain(grace=5)
    return count / elapsed


def _bench_worker_settings(url: str) -> WorkerSettings:
    return WorkerSettings(
        pipeline=PipelineSettings(stream=STREAM, subject_prefix=PREFIX, partitions=16),
        handler="surge_workers.handlers:noop",
        concurrency=8,
        prefetch=512,
        max_batch=256,
        priorities=(Priority.NORMAL,),
        metrics_port=0,
    )


async def _gateway_rates(
    url: str, count: int, size: int, rounds: int, baseline: Callable[[], Awaitable[float]]
) -> tuple[list[tuple[float, float]], float]:
    """(baseline rate, gateway batch rate) per round, back to back; single-POST rate."""
    from surge_workers.loadclient import post_batches, post_singles

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="surge-bench-") as tmp:
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps({TENANT: [TOKEN]}))
        env = dict(os.environ)
        env.update(
            {
                Env.NATS_URL: url,
                Env.STREAM: STREAM,
                Env.SUBJECT_PREFIX: PREFIX,
                Env.PARTITIONS: "16",
                Env.HTTP_HOST: "127.0.0.1",
                Env.HTTP_PORT: str(port),
                Env.TOKENS_FILE: str(tokens),
                Env.RATE_LIMIT: "0",
                Env.LOG_LEVEL: "error",
            }
        )
        proc = subprocess.Popen(  # noqa: ASYNC220 - a child process we own; spawning is quick
            [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_http(f"{base}/readyz", 15.0)
            pairs = []
            for _ in range(rounds):
                bare = await baseline()
                rate = await post_batches(base, TOKEN, TENANT, count, size, batch=100, parallel=4)
                pairs.append((bare, rate))
            single_rate = await post_singles(base, TOKEN, TENANT, max(500, count // 5), size, 32)
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
    return pairs, single_rate


async def _wait_http(url: str, within: float) -> None:
    import aiohttp

    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {within}s")


async def run_bench(
    messages: int = 20_000,
    size: int = 1024,
    rounds: int = 3,
    nats_url: str | None = None,
    gateway: bool = True,
) -> BenchResult:
    result = BenchResult(messages=messages, size=size, rounds=rounds)
    result.notes.append(
        "worker runs the noop handler: the fair comparison to a bare fetch+ack loop"
    )
    if gateway:
        result.notes.append(
            "gateway: own process, HTTP batches of 100 from 4 client connections, every "
            "message acked by JetStream before the 202; baseline is a publish_async pipeline"
        )
    server = None
    if nats_url is None:
        server = NatsServer().start()
        nats_url = server.url
    try:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        config = PipelineConfig(stream=STREAM, subject_prefix=PREFIX, partitions=16)
        await provision_pipeline(js, config)
        await js.purge_stream(STREAM)
        payload = os.urandom(size // 2).hex().encode()[:size]
        settings = _bench_worker_settings(nats_url)
        for r in range(rounds):
            run = f"r{r}-{time.time_ns()}"
            start_seq = (await js.stream_info(STREAM)).state.last_seq + 1
            result.bare_publish_rate = max(
                result.bare_publish_rate, await bare_publish(nc, messages, payload, run)
            )
            bare = await bare_consume(nc, messages, start_seq, f"bare-{r}")
            await js.delete_consumer(STREAM, f"bare-{r}")
            worker_nc = await nats.connect(nats_url)
            try:
                rate = await worker_consume(worker_nc, messages, settings)
            finally:
                await worker_nc.close()
            result.bare_consume_rate = max(result.bare_consume_rate, bare)
            result.worker_rate = max(result.worker_rate, rate)
            result.worker_round_ratios.append(round(rate / bare, 3))
        # Context: the default handler (sticky routing + transcript write per message).
        context_count = max(1000, messages // 4)
        await bare_publish(
            nc, context_count, b'{"text": "my invoice is wrong"}', f"ctx-{time.time_ns()}"
        )
        worker_nc = await nats.connect(nats_url)
        try:
            result.worker_default_handler_rate = await worker_consume(
                worker_nc, context_count, replace(settings, concurrency=64), route_and_store
            )
        finally:
            await worker_nc.close()
        info = await js.consumer_info(STREAM, consumer_name(Priority.NORMAL))
        if info.num_pending:
            result.notes.append(f"warning: {info.num_pending} messages left unprocessed")

        async def baseline() -> float:
            return await bare_publish_async(nc, messages, payload, f"async-{time.time_ns()}")

        if gateway:
            result.batch_publisher_rate = await batch_publisher(
                nc, messages, payload, f"batch-{time.time_ns()}"
            )
            pairs, result.gateway_single_rate = await _gateway_rates(
                nats_url, messages, size, rounds, baseline
            )
            result.bare_publish_async_rate = max(bare for bare, _ in pairs)
            result.gateway_rate = max(rate for _, rate in pairs)
            result.gateway_round_ratios = [round(rate / bare, 3) for bare, rate in pairs]
            result.gateway_ratio = round(statistics.median(result.gateway_round_ratios), 3)
        else:
            result.bare_publish_async_rate = await baseline()
        await nc.close()
        # Each round runs baseline and worker back to back, so background load hits both;
        # the median of these paired ratios is steadier than a ratio of two best-ofs.
        result.worker_ratio = round(statistics.median(result.worker_round_ratios), 3)
        if result.bare_publish_rate:
            result.gateway_vs_publish_ratio = round(
                result.gateway_rate / result.bare_publish_rate, 3
            )
        if result.batch_publisher_rate:
            result.gateway_vs_batch_publisher_ratio = round(
                result.gateway_rate / result.batch_publisher_rate, 3
            )
    finally:
        if server is not None:
            server.cleanup()
    return result


def render(result: BenchResult) -> str:
    lines = [
        f"surge bench dataplane: {result.messages} msgs x {result.size} B, "
        f"{result.rounds} rounds, one nats-server (file storage, loopback)",
        f"  bare fetch(100)+ack loop      {result.bare_consume_rate:10,.0f} msg/s",
        f"  surge-worker (noop handler)   {result.worker_rate:10,.0f} msg/s"
        f"   worker_ratio  {result.worker_ratio:.2f}  (goal >= 0.80; median of "
        f"{', '.join(f'{r:.2f}' for r in result.worker_round_ratios)})",
        f"  bare publish_async pipeline   {result.bare_publish_async_rate:10,.0f} msg/s",
        f"  surge-gateway batch POST      {result.gateway_rate:10,.0f} msg/s"
        f"   gateway_ratio {result.gateway_ratio:.2f}  (goal >= 0.70; median of "
        f"{', '.join(f'{r:.2f}' for r in result.gateway_round_ratios)})",
        f"  (context) bare js.publish loop {result.bare_publish_rate:9,.0f} msg/s"
        f"   gateway/publish {result.gateway_vs_publish_ratio:.2f}",
        f"  (context) gateway's publisher, no HTTP {result.batch_publisher_rate:6,.0f} msg/s"
        f"   gateway/it {result.gateway_vs_batch_publisher_ratio:.2f}",
        f"  (context) gateway single POST {result.gateway_single_rate:10,.0f} msg/s",
        f"  (context) worker, default handler {result.worker_default_handler_rate:8,.0f} msg/s"
        "   (sticky routing + transcript write per message)",
    ]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)
