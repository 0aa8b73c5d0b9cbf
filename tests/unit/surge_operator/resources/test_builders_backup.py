"""The backup CronJob, the restore Job and the NetworkPolicy's S3 egress, as dicts."""

from __future__ import annotations

from typing import Any

from builder_support import MINIMAL, make_ctx

from surge_operator.kube import object_path
from surge_operator.resources import desired_objects
from surge_operator.resources.backup import build_backup_cronjob, build_restore_job
from surge_operator.resources.network_policy import build_network_policy

S3 = {
    "s3": {
        "endpoint": "https://s3.example.test:9443",
        "bucket": "surge-backups",
        "prefix": "prod",
        "credentials": {"secretName": "s3-keys"},
    }
}
WITH_BACKUP: dict[str, Any] = {**MINIMAL, "backup": {"schedule": "0 */6 * * *", "target": S3}}
WITH_PVC_RESTORE: dict[str, Any] = {
    **MINIMAL,
    "restoreFrom": {"target": {"pvc": {"claimName": "backups"}}, "cluster": "team-a/old"},
}


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    containers = pod["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_the_cronjob_runs_the_backup_command_on_the_schedule_without_overlap() -> None:
    cron = build_backup_cronjob(make_ctx(WITH_BACKUP))
    assert cron["spec"]["schedule"] == "0 */6 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1
    pod = job["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    args = _container(pod)["args"]
    assert args[:2] == ["backup", "run"]
    assert "--target=s3://surge-backups/prod" in args
    assert "--cluster=team-a/support" in args
    assert "--keep=7" in args


def test_s3_keys_come_only_from_the_named_secret_and_never_as_literals() -> None:
    pod = build_backup_cronjob(make_ctx(WITH_BACKUP))["spec"]["jobTemplate"]["spec"]["template"]
    env = {e["name"]: e for e in _container(pod)["env"]}
    for name, key in (
        ("SURGE_S3_ACCESS_KEY_ID", "accessKeyId"),
        ("SURGE_S3_SECRET_ACCESS_KEY", "secretAccessKey"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "s3-keys", "key": key}
        assert "value" not in env[name]
    assert env["SURGE_S3_ENDPOINT"]["value"] == "https://s3.example.test:9443"


def test_backup_pods_are_hardened_like_every_surge_pod() -> None:
    pod = build_backup_cronjob(make_ctx(WITH_BACKUP))["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert _container(pod)["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_pvc_target_is_mounted_and_given_as_a_directory() -> None:
    job = build_restore_job(make_ctx(WITH_PVC_RESTORE))
    pod = job["spec"]["template"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["backup"]["persistentVolumeClaim"] == {"claimName": "backups"}
    mounts = {m["name"]: m["mountPath"] for m in _container(pod)["volumeMounts"]}
    assert mounts["backup"] == "/backup"
    assert "--from=dir:/backup/team-a/old/latest" in _container(pod)["args"]


def test_the_cronjob_exists_only_with_spec_backup() -> None:
    assert "CronJob" not in {o["kind"] for o in desired_objects(make_ctx())}
    assert "CronJob" in {o["kind"] for o in desired_objects(make_ctx(WITH_BACKUP))}


def test_the_network_policy_lets_backup_pods_reach_the_s3_port_only_when_needed() -> None:
    def ports(spec: dict[str, Any] | None) -> set[int]:
        egress = build_network_policy(make_ctx(spec))["spec"]["egress"]
        return {p["port"] for rule in egress for p in rule.get("ports", [])}

    assert 9443 in ports(WITH_BACKUP)
    assert 9443 not in ports(None)
    assert ports(WITH_PVC_RESTORE) == ports(None)


def test_with_managed_nats_the_backup_pod_gets_the_backup_user_not_the_workers() -> None:
    managed = {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {}}}]}
    cron = build_backup_cronjob(make_ctx({**managed, "backup": WITH_BACKUP["backup"]}))
    env = {e["name"]: e for e in _container(cron["spec"]["jobTemplate"]["spec"]["template"])["env"]}
    secret = env["SURGE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    assert secret == "support-nats-backup"


def test_the_restore_job_restores_under_this_clusters_names_and_never_retries_a_refusal() -> None:
    ctx = make_ctx(WITH_PVC_RESTORE)
    job = build_restore_job(ctx)
    args = _container(job["spec"]["template"])["args"]
    assert f"--stream={ctx.stream}" in args
    assert f"--subject-prefix={ctx.spec.stream.subject_prefix}" in args
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {"containerName": "surge-backup", "operator": "In", "values": [3]}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never", "podFailurePolicy needs it"


def test_the_operator_knows_the_api_path_of_every_object_it_builds() -> None:
    """The API client maps kinds with a fixed table: a kind missing there fails only on a
    real API server (the backup CronJob did, until the e2e test on real nodes ran)."""
    managed = {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {}}}]}
    specs = [WITH_BACKUP, WITH_PVC_RESTORE, {**managed, "backup": WITH_BACKUP["backup"]}]
    built = [o for spec in specs for o in desired_objects(make_ctx(spec))]
    built.append(build_restore_job(make_ctx(WITH_PVC_RESTORE)))
    assert {"CronJob", "Job", "Deployment"} <= {o["kind"] for o in built}
    for obj in built:
        name = obj["metadata"]["name"]
        assert object_path(obj["apiVersion"], obj["kind"], "ns", name).endswith(f"/{name}")


def test_backup_and_restore_pods_run_the_data_plane_image_even_without_workers_image() -> None:
    ctx = make_ctx(WITH_BACKUP, default_image="surge:9.9.9")
    assert ctx.spec.workers.image is None
    cron = build_backup_cronjob(ctx)
    assert _container(cron["spec"]["jobTemplate"]["spec"]["template"])["image"] == "surge:9.9.9"
    job = build_restore_job(make_ctx(WITH_PVC_RESTORE, default_image="surge:9.9.9"))
    assert _container(job["spec"]["template"])["image"] == "surge:9.9.9"
