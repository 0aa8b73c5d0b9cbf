"""Volumes for local pod processes: Secret, ConfigMap and emptyDir volumes are written to a
per-pod directory, and every container path under a volumeMount's mountPath (in env values,
command, args, workingDir) is rewritten to that directory.

So ``SURGE_TOKENS_FILE=/etc/surge/tokens/tokens`` with a Secret mounted at
``/etc/surge/tokens`` becomes ``<pod dir>/volumes/tenant-tokens/tokens`` for the process.
hostPath mounts map to the host path itself; other volume types are not emulated.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from surge_cluster.podenv import EnvError, RefLookup


def volume_files(
    volume: Mapping[str, Any], namespace: str, lookup: RefLookup
) -> dict[str, str] | None:
    """Relative path -> content for a Secret/ConfigMap volume; {} for emptyDir; None if
    the type is not emulated. A missing, non-optional source raises EnvError."""
    if "emptyDir" in volume:
        return {}
    if source := volume.get("secret"):
        name, kind = str(source.get("secretName", "")), "Secret"
        data = lookup.secret(namespace, name)
    elif source := volume.get("configMap"):
        name, kind = str(source.get("name", "")), "ConfigMap"
        data = lookup.config_map(namespace, name)
    else:
        return None
    if data is None:
        if source.get("optional"):
            return {}
        raise EnvError(f'{kind} "{name}" for volume "{volume.get("name")}" not found')
    items = source.get("items")
    if not items:
        return dict(data)
    files: dict[str, str] = {}
    for item in items:
        key = str(item["key"])
        if key not in data:
            if source.get("optional"):
                continue
            raise EnvError(f'key {key} not found in {kind} "{name}"')
        files[str(item.get("path") or key)] = data[key]
    return files


def materialize(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookup: RefLookup, root: Path
) -> dict[str, str]:
    """Write the container's mounted volumes under root; return mountPath -> local path."""
    namespace = str((pod.get("metadata") or {}).get("namespace", "default"))
    volumes = {str(v["name"]): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(str(mount["name"]))
        if volume is None:
            continue
        if host := volume.get("hostPath"):
            local = Path(str(host["path"]))
        else:
            files = volume_files(volume, namespace, lookup)
            if files is None:
                continue
            local = root / str(volume["name"])
            if "emptyDir" not in volume:
                shutil.rmtree(local, ignore_errors=True)  # fresh content at each start
            local.mkdir(parents=True, exist_ok=True)
            for relative, content in files.items():
                target = local / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, errors="surrogateescape")
        sub_path = str(mount.get("subPath") or "")
        mounts[str(mount["mountPath"]).rstrip("/") or "/"] = (
            str(local / sub_path) if sub_path else str(local)
        )
    return mounts


def rewrite(value: str, mounts: Mapping[str, str]) -> str:
    """Map a container path under a mountPath to its local directory (longest match wins)."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path:
            return mounts[mount_path]
        if value.startswith(mount_path + "/"):
            return mounts[mount_path] + value[len(mount_path) :]
    return value
