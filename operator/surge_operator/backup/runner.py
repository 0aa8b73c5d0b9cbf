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
    retention_plan,
    snapshot_object,
)
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


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
        started_at=_rfc3339(started),
        finished_at=_rfc3339(now()),
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
    """Restore a backup into a cluster whose streams do not exist yet.

    JetStream restores a stream byte for byte, subjects included, so the new cluster must
    use the backup's stream name and subject prefix; a mismatch is refused before anything
    is written.
    """
    t0 = time.monotonic()
    manifest = await load_manifest(store, source_namespace, source_name, backup)
    bound = log.bind(backup=manifest.id, source=manifest.cluster, into=into.folder)
    if manifest.stream != into.stream or manifest.subject_prefix != into.subject_prefix:
        raise RestoreConflictError(
            f"backup {manifest.id} holds stream {manifest.stream} with subject prefix "
            f"{manifest.subject_prefix!r}; set spec.stream.name={manifest.stream} and "
            f"spec.stream.subjectPrefix={manifest.subject_prefix} on the cluster restored into "
            f"(it has {into.stream!r} and {into.subject_prefix!r})"
        )
    for part in manifest.parts:
        if await stream_exists(nc, part.stream, into.api_prefix):
            raise RestoreConflictError(
                f"stream {part.stream} already exists; a restore only goes into a cluster "
                "whose streams were never created (restore before workers start)"
            )
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    restored: dict[str, int] = {}
    folder = f"{cluster_folder(source_namespace, source_name)}/{manifest.id}"
    for part in manifest.parts:
        local = spool / f"restore-{manifest.id}-{part.stream}.snapshot"
        try:
            await store.download(f"{folder}/{part.object}", local)
            if (digest := _sha256(local)) != part.sha256:
                raise BackupError(
                    f"backup {manifest.id}: {part.object} is corrupt "
                    f"(sha256 {digest[:12]}…, manifest says {part.sha256[:12]}…)"
                )
            info = await restore_stream(
                nc, part.config, part.state, _chunks(local), api_prefix=into.api_prefix
            )
        finally:
            local.unlink(missing_ok=True)
        state = info.get("state", {})
        if int(state.get("last_seq", -1)) != part.last_seq:
            raise BackupError(
                f"restore of {part.stream}: last sequence {state.get('last_seq')} "
                f"!= {part.last_seq} recorded in the backup"
            )
        restored[part.stream] = int(state.get("messages", 0))
        bound.info("restore_stream_done", stream=part.stream, messages=restored[part.stream])
    seconds = round(time.monotonic() - t0, 3)
    bound.info("restore_done", seconds=seconds)
    return RestoreResult(manifest, restored, seconds)
