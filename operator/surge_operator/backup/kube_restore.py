"""`surge restore --from NS/NAME/ID --into FILE`: create a new MessagingCluster that
starts from a backup, and wait until the operator reports it restored.

The restore itself is the operator's Job (resources/backup.py); this only fills in
spec.restoreFrom, creates the object and follows its Restored condition.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from surge_operator.api import GROUP, PLURAL, VERSION, MessagingCluster
from surge_operator.errors import BackupError, InvalidSpecError, KubeApiError

POLL_SECONDS = 1.0


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidSpecError(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidSpecError(f"{path}: not a MessagingCluster manifest")
    return doc


def with_restore_source(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """The manifest with spec.restoreFrom set from `NS/NAME/ID|latest` (pure)."""
    parts = source.strip("/").split("/")
    if len(parts) != 3:
        raise InvalidSpecError(
            f"--from {source!r}: give <namespace>/<name>/<backup-id|latest> "
            "of the backed-up cluster"
        )
    spec = dict(doc.get("spec") or {})
    given = dict(spec.get("restoreFrom") or {})
    target = given.get("target") or (spec.get("backup") or {}).get("target")
    if not target:
        raise InvalidSpecError(
            "spec.restoreFrom.target (or spec.backup.target) must say where the backup is"
        )
    spec["restoreFrom"] = {
        "target": target,
        "cluster": f"{parts[0]}/{parts[1]}",
        "backup": parts[2],
    }
    out = {**doc, "spec": spec}
    try:
        MessagingCluster.model_validate(out)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidSpecError(f"{where}: {first.get('msg', 'invalid')}") from None
    return out


def _restored(obj: dict[str, Any]) -> tuple[str, str] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Restored":
            return str(cond.get("status")), f"{cond.get('reason')}: {cond.get('message', '')}"
    return None


def restore_into_new_cluster(
    source: str, manifest: Path, namespace: str | None, timeout: float
) -> dict[str, Any]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from rich.console import Console

    doc = with_restore_source(_load(manifest), source)
    meta = doc.setdefault("metadata", {})
    ns = namespace or meta.get("namespace") or "default"
    meta["namespace"] = ns
    name = str(meta.get("name", ""))
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    except Exception:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    api = client.CustomObjectsApi()
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
    except ApiException as exc:
        if exc.status == 409:
            raise BackupError(
                f"MessagingCluster {ns}/{name} already exists: a restore only goes into a new one"
            ) from None
        raise KubeApiError(f"creating {ns}/{name}: {exc.reason}", status=exc.status or 0) from None
    started = time.monotonic()
    console = Console(stderr=True)
    with console.status(f"restoring {source} into {ns}/{name}") as spinner:
        while time.monotonic() - started < timeout:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
            seen = _restored(obj)  # type: ignore[arg-type]
            if seen is not None:
                status, detail = seen
                spinner.update(f"{ns}/{name}: {detail}")
                if status == "True":
                    return {
                        "cluster": f"{ns}/{name}",
                        "from": source,
                        "restored": True,
                        "seconds": round(time.monotonic() - started, 1),
                    }
                if detail.startswith(("RestoreFailed", "RestoreConflict")):
                    raise BackupError(f"{ns}/{name}: {detail}")
            time.sleep(POLL_SECONDS)
    raise BackupError(f"{ns}/{name} was not restored within {timeout:.0f} s")
