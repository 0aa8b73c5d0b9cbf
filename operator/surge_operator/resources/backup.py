"""Backups and restores run as Jobs, never inside the operator.

A Job can mount the PVC target, its failures are retried by Kubernetes with exponential
back-off (backoffLimit), and a slow or failing backup never holds up the operator's loops
or the data plane. The pod is the hardened Surge pod (same image, NATS credentials and
config as the workers, no Kubernetes token); S3 keys come only from the Secret the spec
names. Each run records its outcome in NATS (backup/records.py) for status and metrics.

    CronJob <cluster>-backup     from spec.backup: schedule, retention, target
    Job     <cluster>-restore    from spec.restoreFrom, once, before any worker exists
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from surge_operator.api import BackupTarget
from surge_operator.backup.contract import (
    CONFLICT_EXIT_CODE,
    ENV_ACCESS_KEY,
    ENV_ENDPOINT,
    ENV_REGION,
    ENV_SECRET_KEY,
    PVC_MOUNT,
)
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata, pod_labels
from surge_operator.resources.pods import pod_template
from surge_workers.contract import Env

CONTAINER = "surge-backup"
#: retries of a failed run; Kubernetes spaces them 10 s, 20 s, 40 s, ... (capped at 6 min)
BACKOFF_LIMIT = 4
#: a run that takes longer than this is stuck, not slow
ACTIVE_DEADLINE_SECONDS = 6 * 3600


def backup_cronjob_name(cluster: str) -> str:
    return f"{cluster}-backup"


def restore_job_name(cluster: str) -> str:
    return f"{cluster}-restore"


def target_port(target: BackupTarget) -> int | None:
    """The TCP port the pod must reach for an S3 target (for the NetworkPolicy)."""
    if target.s3 is None:
        return None
    parts = urlsplit(target.s3.endpoint)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _target_env(target: BackupTarget) -> list[dict[str, Any]]:
    if target.s3 is None:
        return []
    creds = target.s3.credentials
    out: list[dict[str, Any]] = [
        {"name": ENV_ENDPOINT, "value": target.s3.endpoint},
        {
            "name": ENV_ACCESS_KEY,
            "valueFrom": {
                "secretKeyRef": {"name": creds.secret_name, "key": creds.access_key_id_key}
            },
        },
        {
            "name": ENV_SECRET_KEY,
            "valueFrom": {
                "secretKeyRef": {"name": creds.secret_name, "key": creds.secret_access_key_key}
            },
        },
    ]
    if target.s3.region:
        out.append({"name": ENV_REGION, "value": target.s3.region})
    return out


def _job_pod(ctx: BuildContext, target: BackupTarget, args: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": ctx.data_plane_image,
        "command": ["surge"],
        "args": args,
        # The spool for snapshots in flight lives in /tmp (an emptyDir, see pods.volumes).
    }
    template = pod_template(ctx, "backup", container)
    spec = template["spec"]
    main = spec["containers"][0]
    main["env"] = [e for e in main["env"] if not e["name"].startswith("SURGE_S3_")]
    main["env"] += _target_env(target)
    # The snapshot spool needs room for the largest stream: a bigger /tmp than workers get.
    spec["volumes"] = [
        {"name": "tmp", "emptyDir": {}} if v["name"] == "tmp" else v for v in spec["volumes"]
    ]
    if target.pvc is not None:
        spec["volumes"].append(
            {"name": "backup", "persistentVolumeClaim": {"claimName": target.pvc.claim_name}}
        )
        main["volumeMounts"].append({"name": "backup", "mountPath": PVC_MOUNT})
    spec["restartPolicy"] = "Never"
    return template


def _job_spec(ctx: BuildContext, target: BackupTarget, args: list[str]) -> dict[str, Any]:
    return {
        "backoffLimit": BACKOFF_LIMIT,
        "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
        "ttlSecondsAfterFinished": 24 * 3600,
        "template": _job_pod(ctx, target, args),
    }


def build_backup_cronjob(ctx: BuildContext) -> dict[str, Any]:
    backup = ctx.spec.backup
    assert backup is not None, "only built when spec.backup is set"
    args = [
        "backup",
        "run",
        f"--cluster={ctx.namespace}/{ctx.name}",
        f"--stream={ctx.stream}",
        f"--subject-prefix={ctx.spec.stream.subject_prefix}",
        f"--target={backup.target.uri()}",
        f"--keep={backup.retention}",
        "--output=json",
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(ctx, backup_cronjob_name(ctx.name), "backup"),
        "spec": {
            "schedule": backup.schedule,
            "timeZone": "Etc/UTC",
            "suspend": backup.suspend,
            # Two snapshots of one stream at once only double the load: skip, don't stack.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels(ctx, "backup")},
                "spec": _job_spec(ctx, backup.target, args),
            },
        },
    }


def build_restore_job(ctx: BuildContext) -> dict[str, Any]:
    source = ctx.spec.restore_from
    assert source is not None, "only built when spec.restoreFrom is set"
    args = [
        "restore",
        f"--from={source.target.uri()}/{source.cluster}/{source.backup}",
        f"--nats-url=$({Env.NATS_URL})",
        # this cluster's names: another stream name renames, another prefix is refused
        f"--stream={ctx.stream}",
        f"--subject-prefix={ctx.spec.stream.subject_prefix}",
        "--output=json",
    ]
    spec = _job_spec(ctx, source.target, args)
    # A refused restore (exit CONFLICT_EXIT_CODE) fails the Job at once: retries cannot
    # change the spec. Its termination message names the field (handlers/restore.py).
    spec["podFailurePolicy"] = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [CONFLICT_EXIT_CODE],
                },
            }
        ]
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(ctx, restore_job_name(ctx.name), "backup"),
        "spec": spec,
    }
