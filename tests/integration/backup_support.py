"""Shared by the backup and restore integration tests: the cluster a backup belongs to,
a directory target (what a PVC is to the backup Job's pod), losing a cluster's streams,
and a restore named by the cluster it came from."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from surge_operator.backup.locations import open_store
from surge_operator.backup.manifest import backup_order
from surge_operator.backup.runner import ClusterRef, RestoreResult, restore
from surge_operator.backup.store import BackupStore
from surge_workers.pipeline import PipelineConfig

NAMESPACE = "support"


def cluster_ref(config: PipelineConfig, name: str | None = None) -> ClusterRef:
    """The MessagingCluster that owns `config`'s streams (named after the stream unless
    `name` says otherwise)."""
    return ClusterRef(
        NAMESPACE, name or f"mc-{config.stream.lower()}", config.stream, config.subject_prefix
    )


def directory_store(tmp_path: Path) -> BackupStore:
    return open_store(f"dir:{tmp_path / 'pvc'}", {})


async def delete_cluster_streams(js: JetStreamContext, stream: str) -> None:
    """Lose the cluster: every stream a backup of it holds."""
    for name, _ in backup_order(stream):
        await js.delete_stream(name)


async def restore_from(
    nc: Client,
    store: BackupStore,
    source: ClusterRef,
    *,
    spool: Path,
    into: ClusterRef | None = None,
    backup: str = "latest",
) -> RestoreResult:
    """Restore `source`'s backup (the newest unless `backup` names one) into `into`, by
    default the same cluster."""
    return await restore(
        nc,
        store,
        source_namespace=source.namespace,
        source_name=source.name,
        backup=backup,
        into=into or source,
        spool=spool,
    )
