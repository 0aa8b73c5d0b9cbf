"""The Helm chart's values as a model: the source of charts/surge/values.schema.json.

`make crds` writes the schema from these models (`render_values_schema`); a test checks
that the committed schema is current and that charts/surge/values.yaml validates against
it, so a key added to values.yaml without a type here fails the suite. The data-plane pod
template reuses the CRD's own `PodTemplate`, so a chart default and a MessagingCluster's
`spec.workers.template` accept exactly the same fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from surge_operator.api_pods import PodTemplate

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DURATION = r"^[0-9]+(ms|s|m|h)$"


class _Values(BaseModel):
    # snake_case here, camelCase in values.yaml (aliases), as in api.py.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Crds(_Values):
    install: bool = True
    keep: bool = True


class Image(_Values):
    repository: str = Field(min_length=1)
    tag: str = ""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class NamedRef(_Values):
    name: str = Field(min_length=1)


class Operator(_Values):
    replicas: int = Field(ge=0, le=10)
    cluster_wide: bool = True
    namespaces: list[str] = Field(default_factory=list, json_schema_extra={"uniqueItems": True})
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console", "auto"] = "json"
    lease_name: str = Field(min_length=1, max_length=253)
    lease_seconds: int = Field(ge=5, le=300)
    metrics_port: int = Field(ge=1, le=65535)
    health_port: int = Field(ge=1, le=65535)
    extra_env: list[dict[str, Any]] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    priority_class_name: str = ""
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)


class DataPlaneNetworkPolicy(_Values):
    enabled: bool = True


class DataPlane(_Values):
    pod_template: PodTemplate = Field(default_factory=PodTemplate)
    network_policy: DataPlaneNetworkPolicy = Field(default_factory=DataPlaneNetworkPolicy)


class ServiceAccount(_Values):
    create: bool = True
    name: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)


class Rbac(_Values):
    create: bool = True
    aggregate_to_default_roles: bool = True
    secret_namespaces: list[str] = Field(default_factory=list)


class ServiceMonitor(_Values):
    enabled: bool = False
    interval: str = Field(default="15s", pattern=_DURATION)
    labels: dict[str, str] = Field(default_factory=dict)


class PrometheusRule(_Values):
    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    backlog_age_critical_seconds: float = Field(gt=0)
    degradation_level_warning: int = Field(ge=1, le=3)
    reconcile_error_ratio: float = Field(gt=0, le=1)


class Metrics(_Values):
    service_monitor: ServiceMonitor
    prometheus_rule: PrometheusRule


class Dashboards(_Values):
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class Tests(_Values):
    namespace: str = Field(default="", pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    nats_url: str = Field(pattern=r"^(nats|tls)://.+$")
    timeout_seconds: int = Field(ge=10, le=3600)


class ChartValues(_Values):
    """Top level of charts/surge/values.yaml."""

    name_override: str = ""
    fullname_override: str = ""
    crds: Crds
    image: Image
    image_pull_secrets: list[NamedRef] = Field(default_factory=list)
    operator: Operator
    data_plane: DataPlane
    service_account: ServiceAccount
    rbac: Rbac
    pod_security_context: dict[str, Any] = Field(default_factory=dict)
    security_context: dict[str, Any] = Field(default_factory=dict)
    metrics: Metrics
    dashboards: Dashboards
    tests: Tests


def values_schema() -> dict[str, Any]:
    schema = ChartValues.model_json_schema(by_alias=True, mode="validation")
    _drop_titles(schema)
    return {"$schema": "http://json-schema.org/draft-07/schema#", **_draft7(schema)}


def _drop_titles(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):
            node.pop("title")
        for value in node.values():
            _drop_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_titles(value)


def _draft7(schema: dict[str, Any]) -> dict[str, Any]:
    """Draft 7 keeps definitions under `definitions`; pydantic writes 2020-12 `$defs`."""
    text = json.dumps(schema).replace('"#/$defs/', '"#/definitions/')
    out: dict[str, Any] = json.loads(text)
    if "$defs" in out:
        out["definitions"] = out.pop("$defs")
    return out


def render_values_schema() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"
