"""Helpers for the data-plane integration tests: unique pipelines, publishing, in-process
and subprocess workers, reading transcripts and dead letters."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from tests.integration.waits import wait_until

from surge_workers.consumer import Worker
from surge_workers.contract import (
    PRIORITIES,
    Priority,
    dead_letter_stream,
    format_enqueued_at,
    message_headers,
    message_subject,
)
from surge_workers.delivery import Delivery, Handler, HandlerContext
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.provision import provision_pipeline
from surge_workers.settings import PipelineSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def unique_pipeline(**overrides: object) -> PipelineConfig:
    tag = uuid.uuid4().hex[:8]
    fast = PriorityPolicy(ack_wait=5.0, max_deliver=4, backoff=(0.05, 0.1, 0.2))
    base = PipelineConfig(
        stream=f"T{tag}",
        subject_prefix=f"t{tag}",
        partitions=8,
        duplicate_window=60.0,
        policies=dict.fromkeys(PRIORITIES, fast),
        # JetStream reserves a stream's max_bytes up front: the default 1 GiB per replies
        # stream would exhaust the shared test server's file store after a few dozen tests.
        replies_max_bytes=8 << 20,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def connect(url: str) -> Client:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)


async def provisioned(url: str, config: PipelineConfig) -> tuple[Client, JetStreamContext]:
    nc = await connect(url)
    js = nc.jetstream()
    await provision_pipeline(js, config)
    return nc, js


def worker_settings(config: PipelineConfig, **overrides: object) -> WorkerSettings:
    base = WorkerSettings(
        pipeline=PipelineSettings(
            cluster="test",
            stream=config.stream,
            subject_prefix=config.subject_prefix,
            partitions=config.partitions,
        ),
        concurrency=4,
        prefetch=16,
        max_batch=64,
        pull_expires=0.5,
        metrics_port=0,
        drain_timeout=5.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_worker(
    url: str, settings: WorkerSettings, handler: Handler
) -> AsyncIterator[Worker]:
    nc = await connect(url)
    worker = Worker(nc, settings, handler, WorkerMetrics(), log=get_logger("test-worker"))
    await worker.start()
    try:
        yield worker
    finally:
        await worker.drain(grace=5)
        await nc.close()


async def publish(
    js: JetStreamContext,
    config: PipelineConfig,
    *,
    msg_id: str,
    conversation: str,
    priority: Priority = Priority.NORMAL,
    text: str = "hello",
    tenant: str = "acme",
    data: bytes | None = None,
) -> int:
    headers = message_headers(
        tenant=tenant,
        msg_id=msg_id,
        conversation_id=conversation,
        priority=priority,
        enqueued_at=format_enqueued_at(time.time()),
    )
    subject = message_subject(
        config.subject_prefix, priority, conversation, config.partitions, tenant=tenant
    )
    payload = data if data is not None else json.dumps({"text": text}).encode()
    ack = await js.publish(subject, payload, headers=headers)
    return ack.seq


async def backlog(js: JetStreamContext, config: PipelineConfig) -> int:
    from surge_workers.queue_state import read_queue_state

    state = await read_queue_state(js, config, with_oldest_age=False)
    return state.backlog


async def drained(js: JetStreamContext, config: PipelineConfig) -> bool:
    """Nothing pending or in flight in any priority's consumer."""
    return await backlog(js, config) == 0


async def work_off(
    url: str, js: JetStreamContext, config: PipelineConfig, handler: Handler, *, within: float
) -> None:
    """Run an in-process worker with `handler` until the queue is drained (bounded)."""
    async with running_worker(url, worker_settings(config), handler):
        await wait_until(lambda: drained(js, config), within=within)


async def dead_letters(js: JetStreamContext, config: PipelineConfig) -> list[dict[str, object]]:
    """All dead letters (headers + data) via a throwaway ordered read of the DLQ stream."""
    name = dead_letter_stream(config.stream)
    info = await js.stream_info(name)
    if not info.state.messages:
        return []
    durable = f"read{uuid.uuid4().hex[:6]}"
    await js.add_consumer(
        name,
        ConsumerConfig(
            name=durable,
            durable_name=durable,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    sub = await js.pull_subscribe_bind(durable, stream=name)
    out: list[dict[str, object]] = []
    while len(out) < info.state.messages:
        for msg in await sub.fetch(100, timeout=2):
            out.append({"headers": dict(msg.headers or {}), "data": msg.data})
    await js.delete_consumer(name, durable)
    return out


class Recorder:
    """A handler wrapper recording the order of successful calls per conversation."""

    def __init__(self, inner: Handler | None = None) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, int]] = []  # (conversation, msg_id, num_delivered)
        self.done: list[tuple[str, str]] = []

    async def __call__(self, delivery: Delivery, ctx: HandlerContext) -> None:
        self.calls.append((delivery.conversation_id, delivery.msg_id, delivery.num_delivered))
        if self.inner is not None:
            await self.inner(delivery, ctx)
        self.done.append((delivery.conversation_id, delivery.msg_id))


def worker_process_env(url: str, config: PipelineConfig, **env: str) -> dict[str, str]:
    """The environment of a worker process on `config`'s pipeline (quiet logs, short
    pulls, metrics on any free port), with `env` on top."""
    child_env = dict(os.environ)
    child_env.update(
        SURGE_NATS_URL=url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        SURGE_PARTITIONS=str(config.partitions),
        SURGE_METRICS_PORT="0",
        SURGE_LOG_LEVEL="warning",
        SURGE_PULL_EXPIRES="0.5",
        PYTHONPATH=str(ROOT),
    )
    child_env.update(env)
    return child_env


def spawn_worker(url: str, config: PipelineConfig, **env: str) -> subprocess.Popen[bytes]:
    """A real `surge-worker` process (same interpreter) for crash and signal tests."""
    return subprocess.Popen(
        [sys.executable, "-c", "from surge_workers.cli import worker_main; worker_main()"],
        env=worker_process_env(url, config, **env),
        cwd=ROOT,
    )
