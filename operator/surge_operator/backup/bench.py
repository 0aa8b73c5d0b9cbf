"""`surge bench backup`: publish, process, back up, lose the cluster, restore, count.

Everything is real and on loopback: a nats-server with a fresh store, the S3-compatible
server (versitygw), the pipeline provisioned as the operator does, and the default
route-and-store handler in a real Worker. The "disaster" deletes every stream of the
cluster, as `deletionPolicy: delete` does; the restore then goes into the same server.
`lost` counts acknowledged message ids missing from the restored stream; it must be 0.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from surge_operator.backup.locations import open_store
from surge_operator.backup.manifest import backup_order
from surge_operator.backup.runner import ClusterRef, back_up, restore
from surge_operator.backup.s3local import LocalS3
from surge_operator.backup.verify import message_ids, transcript_ids
from surge_workers.consumer import Worker
from surge_workers.contract import (
    PRIORITIES,
    Priority,
    format_enqueued_at,
    message_headers,
    message_subject,
    scoped_id,
)
from surge_workers.handlers import route_and_store
from surge_workers.logs import get_logger
from surge_workers.metrics import WorkerMetrics
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline
from surge_workers.settings import PipelineSettings, WorkerSettings

STREAM = "SURGE_BENCH_BACKUP"
PREFIX = "bench"
BUCKET = "surge-backups"


async def _publish(js: Any, count: int) -> set[str]:
    acked: set[str] = set()
    window = 256
    for start in range(0, count, window):
        batch = []
        for i in range(start, min(count, start + window)):
            msg_id, tenant = f"m-{i:07d}", f"t{i % 3}"
            conversation = f"c-{i % 997}"
            priority = PRIORITIES[i % len(PRIORITIES)]
            headers = message_headers(
                tenant=tenant,
                msg_id=msg_id,
                conversation_id=conversation,
                priority=priority,
                enqueued_at=format_enqueued_at(time.time()),
            )
            subject = message_subject(PREFIX, priority, conversation, 16, tenant=tenant)
            body = json.dumps({"text": f"hello {i}"}).encode()
            batch.append((scoped_id(tenant, msg_id), js.publish(subject, body, headers=headers)))
        for msg_id, fut in batch:
            await fut
            acked.add(msg_id)
    return acked


async def _process_all(url: str, count: int) -> None:
    nc = await nats.connect(url)
    settings = WorkerSettings(
        pipeline=PipelineSettings(
            cluster="bench", stream=STREAM, subject_prefix=PREFIX, partitions=16
        ),
        concurrency=16,
        prefetch=256,
        max_batch=128,
        pull_expires=0.5,
        metrics_port=0,
    )
    metrics = WorkerMetrics()
    worker = Worker(nc, settings, route_and_store, metrics, log=get_logger("bench-backup"))
    await worker.start()
    try:
        deadline = time.monotonic() + max(60.0, count / 200)
        while time.monotonic() < deadline:
            done = sum(metrics.processed_count(p, "ok") for p in Priority)
            if done >= count:
                break
            await asyncio.sleep(0.2)
    finally:
        await worker.drain(grace=10)
        await nc.close()


async def _bench(messages: int, workdir: Path) -> dict[str, Any]:
    nats_server = NatsServer(store_dir=workdir / "nats")
    s3 = LocalS3(workdir / "s3")
    nats_server.start()
    s3.start()
    try:
        s3.make_bucket(BUCKET)
        config = PipelineConfig(stream=STREAM, subject_prefix=PREFIX, partitions=16)
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await provision_pipeline(js, config)
        acked = await _publish(js, messages)
        await _process_all(nats_server.url, messages)
        before = await transcript_ids(js, STREAM)

        store = open_store(f"s3://{BUCKET}/bench", s3.env())
        ref = ClusterRef("bench", "mc", STREAM, PREFIX)
        t0 = time.perf_counter()
        manifest = await back_up(
            nc, store, ref, spool=workdir / "spool", nonce=secrets.token_hex(3)
        )
        snapshot_s = time.perf_counter() - t0

        for stream, _ in backup_order(STREAM):  # the disaster: deletionPolicy: delete
            await js.delete_stream(stream)

        t0 = time.perf_counter()
        await restore(
            nc,
            store,
            source_namespace="bench",
            source_name="mc",
            backup=manifest.id,
            into=ref,
            spool=workdir / "spool",
        )
        restore_s = time.perf_counter() - t0
        ids = await message_ids(js, STREAM, PREFIX)
        after = await transcript_ids(js, STREAM)
        await nc.close()
    finally:
        s3.stop()
        nats_server.cleanup()
    missing = acked - set(ids)
    return {
        "messages": messages,
        "snapshot_s": round(snapshot_s, 3),
        "restore_s": round(restore_s, 3),
        "restored": sum(1 for i in ids if i in acked),
        "lost": len(missing),
        "bytes": manifest.total_bytes,
        "transcripts_before": len(before),
        "transcripts_restored": len(after),
        "transcripts_lost": len(set(before) - set(after)),
        "backup": manifest.id,
        "streams": {p.stream: p.last_seq for p in manifest.parts},
    }


def run_bench(messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="surge-bench-backup-") as tmp:
        return asyncio.run(_bench(messages, Path(tmp)))


def render_bench(result: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(result, sort_keys=True)
    mib = result["bytes"] / (1024 * 1024)
    return (
        f"backup of {result['messages']} messages: {mib:.1f} MiB, "
        f"snapshot {result['snapshot_s']:.2f} s, restore {result['restore_s']:.2f} s\n"
        f"restored {result['restored']} / lost {result['lost']}; transcripts "
        f"{result['transcripts_restored']} / {result['transcripts_before']} "
        f"(lost {result['transcripts_lost']})"
    )
