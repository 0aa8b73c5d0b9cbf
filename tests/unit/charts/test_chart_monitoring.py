"""The rendered ServiceMonitor, PodMonitor and PrometheusRule fit what Surge really runs:
monitors select the ports the builders name and keep the series' own labels, and every
alert and recording expression reads only series the code exports (or `up`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext, desired_objects
from tests.unit.charts.test_chart import exported_metric_names, render

pytestmark = pytest.mark.slow

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def monitoring() -> dict[str, dict[str, Any]]:
    objects = render("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true")
    return {o["kind"]: o for o in objects}


def series_in(expr: str) -> set[str]:
    """Metric names an expression reads (functions, keywords, labels and ranges removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def built_pods() -> dict[str, dict[str, Any]]:
    spec = parse_spec(
        {
            "regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://n:4222"}}],
            "gateway": {"tokensSecret": {"name": "tokens"}},
        }
    )
    ctx = BuildContext(name="support", namespace="team-a", uid="u", spec=spec)
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]
        for o in desired_objects(ctx)
        if o["kind"] == "Deployment"
    }


def test_series_in_reads_names_not_functions_labels_or_ranges() -> None:
    expr = 'sum by (namespace, le) (rate(surge_x_bucket{priority="critical"}[5m])) > on(a) up'
    assert series_in(expr) == {"surge_x_bucket", "up"}


def test_every_alert_and_recording_rule_reads_exported_series() -> None:
    rule = monitoring()["PrometheusRule"]
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    known = exported_metric_names() | recorded | {"up"}
    for r in rules:
        unknown = series_in(r["expr"]) - known
        assert not unknown, f"{r.get('alert') or r.get('record')}: {sorted(unknown)}"


def test_operator_down_watches_only_the_operators_own_scrape_job() -> None:
    objects = monitoring()
    rules = [r for g in objects["PrometheusRule"]["spec"]["groups"] for r in g["rules"]]
    expr = next(r["expr"] for r in rules if r.get("alert") == "SurgeOperatorDown")
    service = next(o for o in render() if o["kind"] == "Service")
    # The ServiceMonitor's job label is the Service's name (no jobLabel override).
    assert "jobLabel" not in objects["ServiceMonitor"]["spec"]
    assert f'job="{service["metadata"]["name"]}"' in expr
    assert 'namespace="surge-system"' in expr
    assert "=~" not in expr, "a regex job would also match healthy workers and gateways"


def test_the_service_monitor_keeps_the_clusters_namespace_label() -> None:
    monitor = monitoring()["ServiceMonitor"]
    service = next(o for o in render() if o["kind"] == "Service")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_pod_monitor_scrapes_workers_and_gateways_on_their_own_ports() -> None:
    monitor = monitoring()["PodMonitor"]
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert all(e["honorLabels"] is True for e in endpoints)
    ports = {e["port"] for e in endpoints}
    selector = monitor["spec"]["selector"]["matchExpressions"]
    for component, pod in built_pods().items():
        labels = pod["metadata"]["labels"]
        assert all(labels.get(m["key"]) in m["values"] for m in selector), component
        names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert names & ports, f"{component} pods expose none of {sorted(ports)}"
