"""Backup addresses on the command line and in Job environments, parsed into stores.

A store is ``s3://BUCKET[/PREFIX]`` (endpoint and credentials from the environment, never
from the command line where `ps` would show them) or ``dir:/PATH`` (a mounted PVC).
One backup is ``<store>/<namespace>/<name>/<id>``, where id may be ``latest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from surge_operator.backup.contract import (
    ENV_ACCESS_KEY,
    ENV_ENDPOINT,
    ENV_REGION,
    ENV_SECRET_KEY,
)
from surge_operator.backup.manifest import is_backup_id
from surge_operator.backup.runner import LATEST
from surge_operator.backup.store import BackupStore, DirectoryStore, S3Location, S3Store
from surge_operator.errors import BackupTargetError


@dataclass(frozen=True)
class BackupAddress:
    store: str
    namespace: str
    name: str
    backup: str


def parse_backup_address(uri: str) -> BackupAddress:
    head, _, tail = uri.rstrip("/").rpartition("/")
    store_and_ns, _, name = head.rpartition("/")
    store, _, namespace = store_and_ns.rpartition("/")
    if not (store and namespace and name and tail):
        raise BackupTargetError(
            f"{uri!r} is not <store>/<namespace>/<name>/<backup-id|latest>, "
            "e.g. s3://surge-backups/prod/support/mc/latest"
        )
    if tail != LATEST and not is_backup_id(tail):
        raise BackupTargetError(f"{tail!r} is not a backup id (YYYYmmddTHHMMSSZ-xxxxxx) or latest")
    return BackupAddress(store=store, namespace=namespace, name=name, backup=tail)


def open_store(uri: str, env: Mapping[str, str]) -> BackupStore:
    if uri.startswith("dir:"):
        return DirectoryStore(Path(uri[len("dir:") :]))
    if uri.startswith("/"):
        return DirectoryStore(Path(uri))
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        endpoint = env.get(ENV_ENDPOINT, "")
        access, secret = env.get(ENV_ACCESS_KEY, ""), env.get(ENV_SECRET_KEY, "")
        if not bucket:
            raise BackupTargetError(f"{uri!r}: no bucket")
        if not endpoint:
            raise BackupTargetError(f"{uri!r}: set {ENV_ENDPOINT} to the S3 endpoint URL")
        if not (access and secret):
            raise BackupTargetError(f"{uri!r}: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY}")
        location = S3Location(endpoint, bucket, prefix, env.get(ENV_REGION) or None)
        return S3Store(location, access, secret)
    raise BackupTargetError(f"{uri!r}: a backup store is s3://BUCKET[/PREFIX] or dir:/PATH")
