"""The Helm chart renders secure, least-privilege objects whose dashboards and alerts only
reference metrics that Surge really exports."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from surge_cluster.versions import bin_dir
from surge_operator.metrics import OperatorMetrics
from surge_workers.metrics import GatewayMetrics, WorkerMetrics
from surge_workers.reply_metrics import ComposerMetrics, SseMetrics

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "surge"


def exported_metric_names() -> set[str]:
    names: set[str] = set()
    worker, gateway = WorkerMetrics().registry, GatewayMetrics().registry
    ComposerMetrics(worker)
    SseMetrics(gateway)
    registries: list[CollectorRegistry] = [OperatorMetrics().registry, worker, gateway]
    # Derive series names from the family type: labelled families without children yet
    # have no samples to read names from.
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
    }
    for registry in registries:
        for family in registry.collect():
            names.update(f"{family.name}{s}" for s in suffixes.get(family.type, ("",)))
    return names


def referenced_metric_names() -> set[str]:
    text = (CHART / "dashboards" / "surge.json").read_text()
    text += (CHART / "templates" / "monitoring.yaml").read_text()
    # Recording rules (surge:...) are defined in the chart itself, not exported.
    return set(re.findall(r"\b(surge_[a-z_]+)\b", text))


def test_dashboard_and_alerts_reference_only_exported_metrics() -> None:
    unknown = referenced_metric_names() - exported_metric_names()
    assert not unknown, f"chart references metrics nobody exports: {sorted(unknown)}"


def test_dashboard_is_valid_json_with_the_promised_panels() -> None:
    dashboard = json.loads((CHART / "dashboards" / "surge.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    promised = ("throughput", "wait", "error", "queue depth", "workers", "degradation", "region")
    for word in (*promised, "replies sent", "(sse) clients", "expected-wait error"):
        assert word in titles


def helm_binary() -> Path:
    helm = bin_dir() / "helm"
    if not os.access(helm, os.X_OK):
        if os.environ.get("SURGE_REQUIRE_E2E"):
            pytest.fail(f"helm missing at {helm}: run tools/build-k8s.sh")
        pytest.skip(f"helm missing at {helm}: run tools/build-k8s.sh")
    return helm


def render(*values: str) -> list[dict[str, Any]]:
    args = [str(helm_binary()), "template", "surge", str(CHART), "--namespace", "surge-system"]
    args += ["--kube-version", "1.36.0"]
    for value in values:
        args += ["--set", value]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.slow
def test_default_render_is_secure() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render()}
    deployment = objects[("Deployment", "surge")]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["command"] == ["surge-operator"]
    assert ("Role", "surge-leader-election") in objects


@pytest.mark.slow
def test_rbac_is_least_privilege() -> None:
    role = next(
        o for o in render() if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "surge"
    )
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        if "secrets" in rule["resources"]:
            # read by name (never listed or watched); written only for managed NATS
            assert not {"list", "watch", "delete"} & set(rule["verbs"]), rule
        if "messagingclusters" in rule["resources"]:
            assert "delete" not in rule["verbs"]
        assert "leases" not in rule["resources"], "leases only in the release namespace"


@pytest.mark.slow
def test_leader_election_is_confined_to_the_release_namespace() -> None:
    roles = [
        o
        for o in render()
        if o["kind"] == "Role" and "helm.sh/hook" not in (o["metadata"].get("annotations") or {})
    ]
    assert [r["metadata"]["namespace"] for r in roles] == ["surge-system"]
    assert roles[0]["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]


@pytest.mark.slow
def test_namespaced_install_uses_a_role_not_a_cluster_role() -> None:
    objects = render("operator.clusterWide=false")
    kinds = {o["kind"] for o in objects}
    assert {"Role", "RoleBinding"} <= kinds
    assert "ClusterRoleBinding" not in kinds
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    # Only the aggregated view/edit roles, which grant the operator nothing.
    assert {r["metadata"]["name"] for r in cluster_roles} == {"surge-view", "surge-edit"}


@pytest.mark.slow
def test_monitoring_objects_render_when_enabled() -> None:
    objects = render("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true")
    kinds = {o["kind"] for o in objects}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "SurgeCriticalLatencyHigh" in alerts
    assert "SurgeDegraded" in alerts


@pytest.mark.slow
def test_image_values_reach_the_operator_and_its_data_plane_image() -> None:
    deployment = next(o for o in render("image.tag=0.1.0-b") if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "surge:0.1.0-b"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SURGE_IMAGE"] == "surge:0.1.0-b", "workers and gateways follow the chart's image"
