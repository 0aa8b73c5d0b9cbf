"""Worker and gateway Deployments, Service, ConfigMap: dict comparisons."""

from __future__ import annotations

from typing import Any

from builder_support import MINIMAL, make_ctx

from surge_operator.resources.config_map import build_config_map, config_hash
from surge_operator.resources.deployment import build_worker_deployment
from surge_operator.resources.gateway import build_gateway_deployment, build_gateway_service
from surge_operator.resources.pods import container_security_context, pod_security_context
from surge_workers.settings import WorkerSettings


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_worker_runs_surge_worker_with_config_from_the_config_map() -> None:
    dep = build_worker_deployment(make_ctx())
    c = _container(dep)
    assert c["command"] == ["surge-worker"]
    assert c["envFrom"] == [{"configMapRef": {"name": "support-config"}}]
    assert dep["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "surge",
            "app.kubernetes.io/instance": "support",
            "app.kubernetes.io/component": "worker",
        }
    }


def test_data_plane_pods_run_the_operator_image_unless_the_spec_names_one() -> None:
    ctx = make_ctx(default_image="surge:9.9.9")
    assert _container(build_worker_deployment(ctx))["image"] == "surge:9.9.9"
    assert _container(build_gateway_deployment(ctx))["image"] == "surge:9.9.9"
    pinned = {**MINIMAL, "workers": {"image": "acme/support-worker:2"}}
    ctx = make_ctx(pinned, default_image="surge:9.9.9")
    assert _container(build_worker_deployment(ctx))["image"] == "acme/support-worker:2"
    assert _container(build_gateway_deployment(ctx))["image"] == "acme/support-worker:2"


def test_worker_replicas_are_left_to_the_autoscaler_when_autoscaling_is_on() -> None:
    assert "replicas" not in build_worker_deployment(make_ctx())["spec"]


def test_worker_replicas_follow_spec_replicas_when_autoscaling_is_off() -> None:
    spec = {**MINIMAL, "replicas": 4, "autoscaling": {"enabled": False}}
    assert build_worker_deployment(make_ctx(spec))["spec"]["replicas"] == 4


def test_worker_replicas_default_to_min_when_autoscaling_is_off_without_replicas() -> None:
    spec = {**MINIMAL, "autoscaling": {"enabled": False, "minReplicas": 2}}
    assert build_worker_deployment(make_ctx(spec))["spec"]["replicas"] == 2


def test_pods_are_hardened_by_default() -> None:
    for dep in (build_worker_deployment(make_ctx()), build_gateway_deployment(make_ctx())):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["automountServiceAccountToken"] is False
        assert _container(dep)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod_security_context()["runAsNonRoot"] is True
        assert container_security_context()["capabilities"] == {"drop": ["ALL"]}


def test_creds_file_is_mounted_from_the_secret_never_put_in_env() -> None:
    spec = {
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {"url": "nats://n:4222", "credentialsSecret": {"name": "nats-creds"}},
            }
        ]
    }
    dep = build_worker_deployment(make_ctx(spec))
    pod = dep["spec"]["template"]["spec"]
    assert {
        "name": "nats-creds",
        "secret": {
            "secretName": "nats-creds",
            "items": [{"key": "creds", "path": "nats.creds"}],
            "defaultMode": 0o440,
        },
    } in pod["volumes"]
    c = _container(dep)
    assert {
        "name": "nats-creds",
        "mountPath": "/var/run/secrets/surge/nats",
        "readOnly": True,
    } in c["volumeMounts"]
    data = build_config_map(make_ctx(spec))["data"]
    assert data["SURGE_NATS_CREDS_FILE"] == "/var/run/secrets/surge/nats/nats.creds"
    assert all("value" not in e or "creds" not in e["value"] for e in c["env"])


def test_token_reaches_pods_by_secret_reference_only() -> None:
    spec = {
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {
                    "url": "nats://n:4222",
                    "credentialsSecret": {"name": "nats-token", "key": "token"},
                },
            }
        ]
    }
    c = _container(build_worker_deployment(make_ctx(spec)))
    assert {
        "name": "SURGE_NATS_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "nats-token", "key": "token"}},
    } in c["env"]
    assert "SURGE_NATS_CREDS_FILE" not in build_config_map(make_ctx(spec))["data"]


def test_config_map_carries_the_data_plane_settings() -> None:
    data = build_config_map(make_ctx())["data"]
    assert data == {
        "SURGE_CLUSTER": "support",
        "SURGE_NAMESPACE": "team-a",
        "SURGE_REGION": "east",
        "SURGE_NATS_URL": "nats://nats.east:4222",
        "SURGE_STREAM": "SURGE_TEAM-A_SUPPORT",
        "SURGE_SUBJECT_PREFIX": "support",
        "SURGE_PARTITIONS": "16",
        "SURGE_HANDLER": "surge_workers.handlers:route_and_store",
        "SURGE_CONCURRENCY": "16",
        "SURGE_METRICS_PORT": "9100",
        "SURGE_HTTP_PORT": "8080",
        "SURGE_RATE_LIMIT": "500",
        "SURGE_MAX_MSG_SIZE": "65536",
        "SURGE_TRANSCRIPT_TTL": "2592000",
        "SURGE_LOG_FORMAT": "json",
        "SURGE_COMPOSER": "surge_workers.composer:acknowledge",
    }


def _volumes_and_mounts(obj: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    return obj["spec"]["template"]["spec"]["volumes"], _container(obj)["volumeMounts"]


def test_the_composers_templates_are_mounted_into_the_workers_only() -> None:
    spec = {
        **MINIMAL,
        "workers": {
            "composer": {"function": "acme.replies:compose", "templatesConfigMap": "acme-replies"}
        },
    }
    ctx = make_ctx(spec)
    data = build_config_map(ctx)["data"]
    assert data["SURGE_COMPOSER"] == "acme.replies:compose"
    assert data["SURGE_TEMPLATES_DIR"] == "/etc/surge/templates"
    volumes, mounts = _volumes_and_mounts(build_worker_deployment(ctx))
    assert {
        "name": "reply-templates",
        "configMap": {"name": "acme-replies", "defaultMode": 0o444},
    } in volumes
    assert {
        "name": "reply-templates",
        "mountPath": "/etc/surge/templates",
        "readOnly": True,
    } in mounts
    volumes, mounts = _volumes_and_mounts(build_gateway_deployment(ctx))
    assert "reply-templates" not in {v["name"] for v in volumes}
    assert "reply-templates" not in {m["name"] for m in mounts}


def test_without_templates_the_workers_mount_none_and_use_the_built_in_texts() -> None:
    data = build_config_map(make_ctx())["data"]
    assert "SURGE_TEMPLATES_DIR" not in data
    volumes, mounts = _volumes_and_mounts(build_worker_deployment(make_ctx()))
    assert "reply-templates" not in {v["name"] for v in volumes}
    assert "reply-templates" not in {m["name"] for m in mounts}


def test_a_disabled_composer_turns_the_workers_intake_stage_off() -> None:
    spec = {**MINIMAL, "workers": {"composer": {"enabled": False}}}
    data = build_config_map(make_ctx(spec))["data"]
    assert data["SURGE_COMPOSER"] == "none"
    assert "SURGE_TEMPLATES_DIR" not in data
    # What the worker makes of that value: no composer, so no intake stage.
    assert WorkerSettings.from_env(data).composer is None
    assert WorkerSettings.from_env(build_config_map(make_ctx())["data"]).composer == (
        "surge_workers.composer:acknowledge"
    )


def test_changing_the_composer_rolls_the_workers() -> None:
    spec = {**MINIMAL, "workers": {"composer": {"templatesConfigMap": "acme-replies"}}}
    assert config_hash(make_ctx(spec)) != config_hash(make_ctx())


def test_a_config_change_rolls_the_pods() -> None:
    before = build_worker_deployment(make_ctx())
    after = build_worker_deployment(make_ctx({**MINIMAL, "workers": {"concurrency": 3}}))
    key = "surge.dev/config-hash"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][key]
        != after["spec"]["template"]["metadata"]["annotations"][key]
    )
    assert config_hash(make_ctx()) == config_hash(make_ctx())


def test_user_env_is_passed_through_and_may_override() -> None:
    spec = {
        **MINIMAL,
        "workers": {
            "env": [
                {"name": "SURGE_WORK_MS", "value": "20"},
                {"name": "POD_IP", "value": "override"},
            ]
        },
    }
    env = _container(build_worker_deployment(make_ctx(spec)))["env"]
    assert {"name": "SURGE_WORK_MS", "value": "20"} in env
    assert [e for e in env if e["name"] == "POD_IP"] == [{"name": "POD_IP", "value": "override"}]


def test_extra_pod_labels_cannot_override_identity_labels() -> None:
    ctx = make_ctx(
        extra_pod_labels={"example.com/cost-center": "true", "app.kubernetes.io/instance": "x"}
    )
    labels = build_worker_deployment(ctx)["spec"]["template"]["metadata"]["labels"]
    assert labels["example.com/cost-center"] == "true"
    assert labels["app.kubernetes.io/instance"] == "support"


def test_pods_prefer_nodes_of_the_active_region() -> None:
    spec = {
        "regions": [
            {"name": "east", "role": "primary", "nats": {"url": "nats://e:4222"}},
            {"name": "west", "role": "standby", "nats": {"url": "nats://w:4222"}},
        ]
    }
    for active, url in ((None, "nats://e:4222"), ("west", "nats://w:4222")):
        ctx = make_ctx(spec, active_region=active)
        pod = build_worker_deployment(ctx)["spec"]["template"]["spec"]
        term = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term[0]["preference"]["matchExpressions"][0]["values"] == [active or "east"]
        assert build_config_map(ctx)["data"]["SURGE_NATS_URL"] == url


def test_gateway_service_targets_the_gateway_pods() -> None:
    svc = build_gateway_service(make_ctx())
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {
            "app.kubernetes.io/name": "surge",
            "app.kubernetes.io/instance": "support",
            "app.kubernetes.io/component": "gateway",
        },
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    dep = build_gateway_deployment(make_ctx({**MINIMAL, "gateway": {"replicas": 3}}))
    assert dep["spec"]["replicas"] == 3
    assert _container(dep)["command"] == ["surge-gateway"]


def test_data_plane_pods_have_a_startup_probe_before_liveness_applies() -> None:
    for build, port in ((build_worker_deployment, "metrics"), (build_gateway_deployment, "http")):
        c = _container(build(make_ctx()))
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        # a minute to start before liveness may restart it
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 60
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        # a busy event loop answers late: neither restarted nor unready for it within 5 s
        assert c["livenessProbe"]["timeoutSeconds"] >= 5
        assert c["readinessProbe"]["timeoutSeconds"] >= 5


def test_the_gateway_stops_its_http_server_well_inside_its_grace_period() -> None:
    from surge_workers.gateway.runner import HTTP_SHUTDOWN_SECONDS

    grace = build_gateway_deployment(make_ctx())["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    # the rest of the grace period drains the NATS connection before SIGKILL
    assert grace >= HTTP_SHUTDOWN_SECONDS + 10
