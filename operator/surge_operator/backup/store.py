"""Where backups are kept: a BackupStore Protocol with two implementations.

* :class:`S3Store`: any S3-compatible object store (endpoint, bucket, optional prefix,
  credentials from a Secret), through the MinIO Python SDK, run in a thread.
* :class:`DirectoryStore`: a directory, typically a PersistentVolumeClaim mounted into the
  backup Job's pod. Files are fsynced and renamed into place, so a crash leaves either the
  whole object or none of it.

Keys are '/'-separated paths below the store's root. Both map their failures onto the
BackupTargetError family, so callers see one vocabulary (unreachable, auth, full).
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from surge_operator.errors import (
    BackupNotFoundError,
    BackupTargetAuthError,
    BackupTargetError,
    BackupTargetFullError,
)

T = TypeVar("T")

_AUTH_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidSecretKey"}
)
_FULL_CODES = frozenset({"XMinioStorageFull", "StorageFull", "EntityTooLarge", "QuotaExceeded"})


class BackupStore(Protocol):
    def describe(self) -> str:
        """Where this store points, for logs and status (never credentials)."""

    async def upload(self, key: str, path: Path) -> None: ...

    async def download(self, key: str, path: Path) -> None: ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def list_children(self, prefix: str) -> list[str]:
        """Names of the immediate children ("folders" and objects) under prefix."""

    async def exists(self, key: str) -> bool: ...

    async def delete_tree(self, prefix: str) -> None: ...


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True)
class DirectoryStore:
    root: Path

    def describe(self) -> str:
        return f"dir:{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise BackupTargetError(f"key {key!r} escapes the backup directory")
        return path

    async def upload(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._copy_in, path, self._path(key))

    async def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise BackupNotFoundError(f"{self.describe()}/{key} does not exist")
        await asyncio.to_thread(shutil.copyfile, source, path)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write_bytes, self._path(key), data)

    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise BackupNotFoundError(f"{self.describe()}/{key} does not exist")
        return await asyncio.to_thread(path.read_bytes)

    async def list_children(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            if not self.root.is_dir():
                raise BackupTargetError(f"backup directory {self.root} does not exist")
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))

    async def exists(self, key: str) -> bool:
        return self._path(key).exists()

    async def delete_tree(self, prefix: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._path(prefix), True)

    # -- durable writes: temp file, fsync, rename, fsync the directory

    def _copy_in(self, source: Path, target: Path) -> None:
        with _mapped_os_errors(self.describe()):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial")
            with source.open("rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            tmp.replace(target)
            _fsync_dir(target.parent)

    def _write_bytes(self, target: Path, data: bytes) -> None:
        with _mapped_os_errors(self.describe()):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial")
            with tmp.open("wb") as dst:
                dst.write(data)
                dst.flush()
                os.fsync(dst.fileno())
            tmp.replace(target)
            _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _mapped_os_errors:  # noqa: N801 - used as a context manager, reads like a statement
    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if not isinstance(exc, OSError):
            return
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupTargetFullError(f"{self.where}: no space left ({exc.strerror})") from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise BackupTargetAuthError(f"{self.where}: not writable ({exc.strerror})") from exc
        raise BackupTargetError(f"{self.where}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- S3


@dataclass(frozen=True)
class S3Location:
    endpoint: str  # http(s)://host[:port]
    bucket: str
    prefix: str = ""
    region: str | None = None
    verify_tls: bool = True


class S3Store:
    def __init__(self, location: S3Location, access_key: str, secret_key: str) -> None:
        parts = urlsplit(location.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BackupTargetError(
                f"spec.backup.target.s3.endpoint {location.endpoint!r} must be http(s)://host[:port]"
            )
        self.location = location
        # Short timeouts and few retries: a dead target must fail the run, not hang it.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=60.0),
            retries=urllib3.Retry(
                total=2, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504)
            ),
            cert_reqs="CERT_REQUIRED" if location.verify_tls else "CERT_NONE",
        )
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=location.region,
            http_client=http,
        )

    def describe(self) -> str:
        prefix = f"/{self.location.prefix.strip('/')}" if self.location.prefix else ""
        return f"s3:{self.location.endpoint}/{self.location.bucket}{prefix}"

    def _key(self, key: str) -> str:
        prefix = self.location.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except S3Error as exc:
            if exc.code in _AUTH_CODES:
                raise BackupTargetAuthError(f"{self.describe()}: {what}: {exc.code}") from exc
            if exc.code in _FULL_CODES:
                raise BackupTargetFullError(f"{self.describe()}: {what}: {exc.code}") from exc
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise BackupNotFoundError(f"{self.describe()}: {what}: {exc.code}") from exc
            raise BackupTargetError(f"{self.describe()}: {what}: {exc.code}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise BackupTargetError(f"{self.describe()}: {what}: unreachable ({exc})") from exc
        except OSError as exc:
            raise BackupTargetError(f"{self.describe()}: {what}: {exc}") from exc

    async def upload(self, key: str, path: Path) -> None:
        await self._call(
            f"upload {key}",
            lambda: self._client.fput_object(self.location.bucket, self._key(key), str(path)),
        )

    async def download(self, key: str, path: Path) -> None:
        await self._call(
            f"download {key}",
            lambda: self._client.fget_object(self.location.bucket, self._key(key), str(path)),
        )

    async def put_bytes(self, key: str, data: bytes) -> None:
        import io

        await self._call(
            f"put {key}",
            lambda: self._client.put_object(
                self.location.bucket, self._key(key), io.BytesIO(data), len(data)
            ),
        )

    async def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self.location.bucket, self._key(key))
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return await self._call(f"get {key}", read)

    async def list_children(self, prefix: str) -> list[str]:
        folder = self._key(prefix).rstrip("/") + "/"

        def names() -> list[str]:
            objects = self._client.list_objects(self.location.bucket, prefix=folder)
            return sorted(str(o.object_name)[len(folder) :].strip("/") for o in objects)

        return await self._call(f"list {prefix}", names)

    async def exists(self, key: str) -> bool:
        try:
            await self._call(
                f"stat {key}",
                lambda: self._client.stat_object(self.location.bucket, self._key(key)),
            )
        except BackupNotFoundError:
            return False
        return True

    async def delete_tree(self, prefix: str) -> None:
        folder = self._key(prefix).rstrip("/") + "/"

        def delete() -> None:
            objects = self._client.list_objects(self.location.bucket, prefix=folder, recursive=True)
            doomed = [DeleteObject(str(o.object_name)) for o in objects]
            errors = list(self._client.remove_objects(self.location.bucket, doomed))
            if errors:
                raise BackupTargetError(f"{self.describe()}: delete {prefix}: {errors[0]}")

        await self._call(f"delete {prefix}", delete)
