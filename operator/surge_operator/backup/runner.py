"""Back up, list, prune and restore one MessagingCluster's JetStream state.

Consistency: streams are snapshotted one after the other, in :func:`backup_order`. The
message stream (with its consumers' ack floors) goes first and the KV state that
processing writes goes after it, so any message acknowledged after its stream was
snapshotted is, after a restore, still pending and redelivered; the handler rewrites its
transcript idempotently (keyed by message id). Nothing acknowledged to a client before the
snapshot can be missing from both the restored stream and the restored KV.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client

from surge_operator.backup.manifest import (
    MANIFEST_NAME,
    Manifest,
    PartRole,
    StreamPart,
    backup_id,
    backup_order,
    cluster_folder,
    is_backup_id,
    kv_bucket,
    restored_names,
    retention_plan,
    snapshot_object,
)
from surge_operator.backup.rename import delete_stream, renamed_config, restore_bucket_renamed
from surge_operator.backup.snapshot import (
    CHUNK_SIZE,
    DEFAULT_API_PREFIX,
    restore_stream,
    snapshot_stream,
)
from surge_operator.backup.store import BackupStore
from surge_operator.errors import (
    BackupError,
    BackupNotFoundError,
    RestoreConflictError,
    SnapshotError,
)
from surge_operator.status import timestamp
from surge_workers.contract import routing_bucket
from surge_workers.restored import MARKER_KEY, RestoreMarker

log = structlog.get_logger("surge.backup")

LATEST = "latest"


@dataclass(frozen=True)
class ClusterRef:
    """Which cluster's streams, and how to reach its JetStream API."""

    namespace: str
    name: str
    stream: str
    subject_prefix: str
    api_prefix: str = DEFAULT_API_PREFIX

    @property
    def folder(self) -> str:
        return cluster_folder(self.namespace, self.name)


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    streams: dict[str, int]  # stream -> messages restored
    seconds: float


async def stream_exists(nc: Client, stream: str, api_prefix: str = DEFAULT_API_PREFIX) -> bool:
    try:
        reply = await nc.request(f"{api_prefix}.STREAM.INFO.{stream}", b"", timeout=10)
    except Exception as exc:
        raise SnapshotError(f"JetStream did not answer for stream {stream}: {exc!r}") from exc
    error = json.loads(reply.data).get("error")
    if not error:
        return True
    if error.get("code") == 404:
        return False
    raise SnapshotError(f"stream info {stream}: {error.get('description')}")


async def back_up(
    nc: Client,
    store: BackupStore,
    ref: ClusterRef,
    *,
    spool: Path,
    nonce: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Manifest:
    """Snapshot every stream of the cluster into `store`; the manifest goes last."""
    started, t0 = now(), time.monotonic()
    bid = backup_id(started, nonce)
    folder = f"{ref.folder}/{bid}"
    bound = log.bind(cluster=ref.folder, backup=bid, target=store.describe())
    parts: list[StreamPart] = []
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    for stream, role in backup_order(ref.stream):
        if not await stream_exists(nc, stream, ref.api_prefix):
            if role is PartRole.MESSAGES:
                raise SnapshotError(f"stream {stream} does not exist; nothing to back up")
            bound.info("backup_stream_absent", stream=stream)
            continue
        local = spool / f"{bid}-{stream}.snapshot"
        try:
            with local.open("wb") as fh:

                async def sink(chunk: bytes, fh=fh) -> None:  # type: ignore[no-untyped-def]
                    fh.write(chunk)

                info = await snapshot_stream(nc, stream, sink, api_prefix=ref.api_prefix)
            obj = snapshot_object(stream)
            await store.upload(f"{folder}/{obj}", local)
        finally:
            local.unlink(missing_ok=True)
        part = StreamPart(
            stream=stream,
            role=role,
            object=obj,
            last_seq=int(info.state.get("last_seq", 0)),
            messages=int(info.state.get("messages", 0)),
            bytes=info.bytes,
            sha256=info.sha256,
            config=info.config,
            state=info.state,
        )
        parts.append(part)
        bound.info("backup_stream_done", stream=stream, last_seq=part.last_seq, bytes=part.bytes)
    manifest = Manifest(
        id=bid,
        cluster=ref.folder,
        stream=ref.stream,
        subject_prefix=ref.subject_prefix,
        started_at=timestamp(started),
        finished_at=timestamp(now()),
        duration_seconds=round(time.monotonic() - t0, 3),
        parts=tuple(parts),
    )
    await store.put_bytes(f"{folder}/{MANIFEST_NAME}", manifest.to_json())
    bound.info("backup_done", bytes=manifest.total_bytes, seconds=manifest.duration_seconds)
    return manifest


async def list_backups(
    store: BackupStore, namespace: str, name: str
) -> tuple[list[str], list[str]]:
    """(complete, incomplete) backup ids of one cluster, oldest first."""
    folder = cluster_folder(namespace, name)
    complete: list[str] = []
    incomplete: list[str] = []
    for child in await store.list_children(folder):
        if not is_backup_id(child):
            continue
        done = await store.exists(f"{folder}/{child}/{MANIFEST_NAME}")
        (complete if done else incomplete).append(child)
    return sorted(complete), sorted(incomplete)


async def load_manifest(store: BackupStore, namespace: str, name: str, bid: str) -> Manifest:
    complete, _ = await list_backups(store, namespace, name)
    if bid == LATEST:
        if not complete:
            raise BackupNotFoundError(
                f"no complete backup of {namespace}/{name} in {store.describe()}"
            )
        bid = complete[-1]
    elif bid not in complete:
        raise BackupNotFoundError(
            f"backup {bid} of {namespace}/{name} is not in {store.describe()} (or is incomplete)"
        )
    raw = await store.get_bytes(f"{cluster_folder(namespace, name)}/{bid}/{MANIFEST_NAME}")
    return Manifest.from_json(raw)


async def prune(store: BackupStore, namespace: str, name: str, keep: int) -> list[str]:
    complete, incomplete = await list_backups(store, namespace, name)
    doomed = retention_plan(complete, incomplete, keep)
    for bid in doomed:
        await store.delete_tree(f"{cluster_folder(namespace, name)}/{bid}")
    if doomed:
        log.info("backup_pruned", cluster=f"{namespace}/{name}", deleted=doomed, kept=keep)
    return doomed


async def _chunks(path: Path, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def restore(
    nc: Client,
    store: BackupStore,
    *,
    source_namespace: str,
    source_name: str,
    backup: str,
    into: ClusterRef,
    spool: Path,
) -> RestoreResult:
    """Restore a backup into a cluster whose streams do not exist yet; all or nothing.

    The cluster restored into may use another stream name (see backup/rename.py) but not
    another subject prefix: JetStream restores stored messages with their subjects, and
    the consumers' ack floors only hold for the stream as it was. A prefix mismatch or an
    existing stream is refused before anything is written; a failure part-way deletes
    what this restore created, so the Job's next attempt starts clean. Last, it leaves
    the restore marker the workers honour (surge_workers.restored).
    """
    t0 = time.monotonic()
    manifest = await load_manifest(store, source_namespace, source_name, backup)
    bound = log.bind(backup=manifest.id, source=manifest.cluster, into=into.folder)
    if manifest.subject_prefix != into.subject_prefix:
        raise RestoreConflictError(
            f"backup {manifest.id} holds subjects under the prefix {manifest.subject_prefix!r} "
            f"and spec.stream.subjectPrefix is {into.subject_prefix!r}: set "
            f"spec.stream.subjectPrefix={manifest.subject_prefix} on the cluster restored "
            "into (JetStream restores messages with their subjects)"
        )
    names = restored_names(manifest.stream, into.stream)
    for part in manifest.parts:
        if await stream_exists(nc, names[part.stream], into.api_prefix):
            raise RestoreConflictError(
                f"stream {names[part.stream]} already exists; a restore only goes into a "
                "cluster whose streams were never created (restore before workers start)"
            )
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    restored: dict[str, int] = {}
    # None of these existed above: whatever of them exists after a failure is ours.
    created: list[str] = []
    folder = f"{cluster_folder(source_namespace, source_name)}/{manifest.id}"
    try:
        for part in manifest.parts:
            target = names[part.stream]
            created.append(target)
            key = f"{folder}/{part.object}"
            state = await _restore_part(
                nc, store, key, part, target, into, spool, manifest_stream=manifest.stream
            )
            restored[target] = int(state.get("messages", 0))
            bound.info("restore_stream_done", stream=target, messages=restored[target])
        await _leave_marker(nc, manifest, names, into)
    except BaseException:
        for name in reversed(created):
            await delete_stream(nc, name, into.api_prefix)
        raise
    seconds = round(time.monotonic() - t0, 3)
    bound.info("restore_done", seconds=seconds, renamed=manifest.stream != into.stream)
    return RestoreResult(manifest, restored, seconds)


async def _restore_part(
    nc: Client,
    store: BackupStore,
    key: str,
    part: StreamPart,
    target: str,
    into: ClusterRef,
    spool: Path,
    *,
    manifest_stream: str,
) -> dict[str, Any]:
    local = spool / f"restore-{target}.snapshot"
    old_bucket, new_bucket = kv_bucket(part.stream), kv_bucket(target)
    mirrored = target != part.stream and old_bucket is not None and new_bucket is not None
    try:
        await store.download(key, local)
        if (digest := _sha256(local)) != part.sha256:
            raise BackupError(
                f"{key} is corrupt (sha256 {digest[:12]}…, manifest says {part.sha256[:12]}…)"
            )
        if target == part.stream:
            info = await restore_stream(
                nc, part.config, part.state, _chunks(local), api_prefix=into.api_prefix
            )
        elif old_bucket is not None and new_bucket is not None:
            info = await restore_bucket_renamed(
                nc,
                part.config,
                part.state,
                _chunks(local),
                old_bucket=old_bucket,
                new_bucket=new_bucket,
                api_prefix=into.api_prefix,
            )
        else:
            config = renamed_config(part.config, target, old=manifest_stream, new=into.stream)
            info = await restore_stream(
                nc, config, part.state, _chunks(local), api_prefix=into.api_prefix
            )
    finally:
        local.unlink(missing_ok=True)
    state: dict[str, Any] = info.get("state", {})
    # A mirror copies messages, not a trailing gap: count them instead of the sequence.
    field, want = ("messages", part.messages) if mirrored else ("last_seq", part.last_seq)
    if int(state.get(field, -1)) != want:
        raise BackupError(
            f"restore of {part.stream} as {target}: {field} {state.get(field)} != {want} "
            "recorded in the backup"
        )
    return state


async def _leave_marker(
    nc: Client, manifest: Manifest, names: dict[str, str], into: ClusterRef
) -> None:
    """The restore marker in the restored routing bucket (none without one: a cluster
    whose backup holds no routing state composed no replies worth guarding)."""
    messages, replies = manifest.part(PartRole.MESSAGES), manifest.part(PartRole.REPLIES)
    routing = routing_bucket(into.stream)
    if messages is None or f"KV_{routing}" not in {names[p.stream] for p in manifest.parts}:
        return
    marker = RestoreMarker(
        backup=manifest.id,
        source=manifest.cluster,
        messages_last_seq=messages.last_seq,
        replies_last_seq=replies.last_seq if replies is not None else 0,
    )
    try:
        await nc.jetstream().publish(f"$KV.{routing}.{MARKER_KEY}", marker.encode(), timeout=10)
    except Exception as exc:
        raise SnapshotError(f"writing the restore marker into {routing}: {exc!r}") from exc
