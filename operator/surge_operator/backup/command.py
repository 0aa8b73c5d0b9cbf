"""`surge backup run|list` and `surge restore`: connect, call the runner, render, exit code.

Exit codes: 0 done, 1 the work failed (the message says why), 2 usage. Credentials come
from the environment only (the NATS contract of the workers, and SURGE_S3_*).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType

from surge_operator.backup.locations import open_store, parse_backup_address
from surge_operator.backup.records import KEY_LAST, KEY_LAST_SUCCESS, RunRecord, records_bucket
from surge_operator.backup.runner import ClusterRef, back_up, list_backups, prune, restore
from surge_operator.errors import BackupError, SurgeError
from surge_operator.status import timestamp
from surge_workers.contract import Env
from surge_workers.settings import NatsSettings


async def connect(env: Mapping[str, str], url: str | None = None) -> Client:
    settings = NatsSettings.from_env({**env, **({Env.NATS_URL: url} if url else {})})
    try:
        return await nats.connect(
            **settings.connect_options(),
            name="surge-backup",
            connect_timeout=5,
            max_reconnect_attempts=3,
        )
    except Exception as exc:
        raise BackupError(f"cannot reach NATS at {', '.join(settings.servers)}: {exc!r}") from exc


async def record_run(nc: Client, stream: str, record: RunRecord) -> None:
    """Best effort: a record that cannot be written never turns a good backup into a bad one."""
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(
            KeyValueConfig(bucket=records_bucket(stream), history=5, storage=StorageType.FILE)
        )
        await kv.put(KEY_LAST, record.encode())
        if record.outcome == "succeeded":
            await kv.put(KEY_LAST_SUCCESS, record.encode())
    except Exception:
        pass


async def run_backup(
    *,
    cluster: str,
    stream: str,
    subject_prefix: str,
    target: str,
    keep: int,
    api_prefix: str,
    nats_url: str | None,
    record: bool,
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    namespace, _, name = cluster.partition("/")
    store = open_store(target, env)
    ref = ClusterRef(namespace, name, stream, subject_prefix, api_prefix)
    nc = await connect(env, nats_url)
    try:
        try:
            with tempfile.TemporaryDirectory(prefix="surge-backup-") as spool:
                manifest = await back_up(
                    nc, store, ref, spool=Path(spool), nonce=secrets.token_hex(3)
                )
            pruned = await prune(store, namespace, name, keep)
        except SurgeError as exc:
            if record:
                await record_run(
                    nc,
                    stream,
                    RunRecord(
                        outcome="failed",
                        finished_at=timestamp(datetime.now(UTC)),
                        target=store.describe(),
                        reason=exc.reason,
                        message=exc.message[:1024],
                    ),
                )
            raise
        result = RunRecord(
            outcome="succeeded",
            finished_at=manifest.finished_at,
            backup=manifest.id,
            size_bytes=manifest.total_bytes,
            duration_seconds=manifest.duration_seconds,
            target=store.describe(),
            pruned=pruned,
        )
        if record:
            await record_run(nc, stream, result)
        return {
            **result.model_dump(),
            "streams": {
                p.stream: {"last_seq": p.last_seq, "messages": p.messages} for p in manifest.parts
            },
        }
    finally:
        await nc.close()


async def run_list(
    *, target: str, cluster: str, env: Mapping[str, str] = os.environ
) -> list[dict[str, Any]]:
    from surge_operator.backup.runner import load_manifest

    namespace, _, name = cluster.partition("/")
    store = open_store(target, env)
    complete, incomplete = await list_backups(store, namespace, name)
    rows: list[dict[str, Any]] = []
    for bid in complete:
        manifest = await load_manifest(store, namespace, name, bid)
        rows.append(
            {
                "id": bid,
                "complete": True,
                "finished_at": manifest.finished_at,
                "bytes": manifest.total_bytes,
                "streams": {p.stream: p.last_seq for p in manifest.parts},
            }
        )
    rows += [{"id": bid, "complete": False} for bid in incomplete]
    return sorted(rows, key=lambda r: str(r["id"]))


async def run_restore(
    *,
    source: str,
    nats_url: str | None,
    stream: str | None,
    subject_prefix: str | None,
    api_prefix: str,
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """Restore straight into a NATS (no Kubernetes). Stream name and prefix default to the
    backup's own; another stream name renames the streams and buckets, another prefix is
    refused (RestoreConflictError)."""
    from surge_operator.backup.runner import load_manifest

    address = parse_backup_address(source)
    store = open_store(address.store, env)
    manifest = await load_manifest(store, address.namespace, address.name, address.backup)
    into = ClusterRef(
        address.namespace,
        address.name,
        stream or manifest.stream,
        subject_prefix or manifest.subject_prefix,
        api_prefix,
    )
    nc = await connect(env, nats_url)
    try:
        with tempfile.TemporaryDirectory(prefix="surge-restore-") as spool:
            result = await restore(
                nc,
                store,
                source_namespace=address.namespace,
                source_name=address.name,
                backup=manifest.id,
                into=into,
                spool=Path(spool),
            )
    finally:
        await nc.close()
    return {
        "backup": result.manifest.id,
        "streams": result.streams,
        "seconds": result.seconds,
        "last_seq": {p.stream: p.last_seq for p in result.manifest.parts},
    }


def render(payload: Any, output: str) -> str:
    if output == "json":
        return json.dumps(payload, indent=2, sort_keys=True)
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(payload, sort_keys=True))
    if isinstance(payload, list):
        return (
            "\n".join(
                f"{r['id']}  {'complete' if r.get('complete') else 'INCOMPLETE'}  "
                f"{r.get('bytes', '-')} bytes  {r.get('finished_at', '')}"
                for r in payload
            )
            or "no backups"
        )
    return "\n".join(f"{k}: {v}" for k, v in payload.items())


def run(coro: Any) -> Any:
    return asyncio.run(coro)
