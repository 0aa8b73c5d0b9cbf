"""The MessagingCluster models accept the examples and reject bad input naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from surge_operator import api

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_through_the_models(path: Path) -> None:
    cluster = api.MessagingCluster.model_validate(load(path))
    assert cluster.spec.primary_region().role is api.RegionRole.PRIMARY


@pytest.mark.parametrize(
    ("name", "field", "words"),
    [
        ("min-above-max.yaml", "spec.autoscaling", "minReplicas (10) must be less than or equal"),
        ("two-primaries.yaml", "spec.regions", "exactly one region with role primary, found 2"),
        ("unknown-priority.yaml", "spec.priorities.0.name", "'critical', 'normal' or 'bulk'"),
        ("critical-sheddable.yaml", "spec.priorities", "critical may not be sheddable"),
        ("url-and-managed.yaml", "spec.regions.0.nats", "exactly one of url (external NATS)"),
        ("replicas-above-servers.yaml", "spec", "spec.stream.replicas (3) must not exceed"),
        (
            "composer-templates-disabled.yaml",
            "spec.workers.composer",
            "spec.workers.composer.templatesConfigMap needs spec.workers.composer.enabled",
        ),
        (
            "env-secret-ref.yaml",
            "spec.workers.env.0.valueFrom.secretKeyRef",
            "spec.workers.env[].valueFrom.secretKeyRef is not allowed",
        ),
    ],
)
def test_invalid_examples_are_rejected_naming_the_field(name: str, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        api.MessagingCluster.model_validate(load(EXAMPLES / "invalid" / name))
    errors = caught.value.errors()
    assert [".".join(str(p) for p in e["loc"]) for e in errors] == [field]
    assert words in errors[0]["msg"]


def primary(name: str = "east") -> dict[str, Any]:
    return {"name": name, "role": "primary", "nats": {"url": "nats://127.0.0.1:4222"}}


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = api.parse_spec({"regions": [primary()]})
    assert spec.stream.partitions == 16
    assert spec.autoscaling.min_replicas <= spec.autoscaling.max_replicas
    assert spec.latency_targets() == {
        api.Priority.CRITICAL: 2.0,
        api.Priority.NORMAL: 10.0,
        api.Priority.BULK: 120.0,
    }
    assert spec.sheddable() == frozenset({api.Priority.BULK})


def test_unknown_field_is_rejected_rather_than_silently_ignored() -> None:
    with pytest.raises(ValidationError, match="maxReplica"):
        api.parse_spec({"regions": [primary()], "autoscaling": {"maxReplica": 3}})


def test_region_names_must_be_unique() -> None:
    standby = {**primary(), "role": "standby"}
    with pytest.raises(ValidationError, match="names must be unique"):
        api.parse_spec({"regions": [primary(), standby]})


def test_partial_priorities_keep_defaults_for_the_rest() -> None:
    spec = api.parse_spec(
        {"regions": [primary()], "priorities": [{"name": "bulk", "latencyTargetSeconds": 600}]}
    )
    assert spec.latency_targets()[api.Priority.BULK] == 600
    assert spec.latency_targets()[api.Priority.CRITICAL] == 2.0


def test_stream_name_is_derived_when_not_given() -> None:
    spec = api.parse_spec({"regions": [primary()]})
    assert api.stream_name("support-team", "chat.v2", spec) == "SURGE_SUPPORT-TEAM_CHAT_V2"


def test_status_round_trips_in_camel_case() -> None:
    status = api.MessagingClusterStatus(
        phase=api.Phase.RUNNING,
        desired_replicas=4,
        p95_wait=0.8,
        history=[
            api.HistoryEntry(
                time="2026-11-25T08:00:00Z",
                kind="scale",
                from_value="2",
                to_value="4",
                reason="backlog",
            )
        ],
    )
    wire = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert wire["desiredReplicas"] == 4
    assert wire["history"][0]["from"] == "2"
    assert api.MessagingClusterStatus.model_validate(wire) == status


def test_critical_may_not_be_sheddable() -> None:
    with pytest.raises(ValidationError, match="critical may not be sheddable"):
        api.parse_spec(
            {
                "regions": [primary()],
                "priorities": [{"name": "critical", "latencyTargetSeconds": 1, "sheddable": True}],
            }
        )


def test_the_composer_defaults_to_the_built_in_acknowledgements() -> None:
    composer = api.parse_spec({"regions": [primary()]}).workers.composer
    assert composer.enabled
    assert composer.function == "surge_workers.composer:acknowledge"
    assert composer.templates_config_map is None


@pytest.mark.parametrize(
    ("composer", "field", "words"),
    [
        ({"function": "not a function"}, "function", "should match pattern"),
        ({"templatesConfigMap": "Acme_Replies"}, "templatesConfigMap", "should match pattern"),
        (
            {"enabled": False, "templatesConfigMap": "acme-replies"},
            "",
            "spec.workers.composer.templatesConfigMap needs spec.workers.composer.enabled",
        ),
        ({"sendNotices": True}, "sendNotices", "Extra inputs are not permitted"),
    ],
)
def test_invalid_composer_settings_are_rejected_naming_the_field(
    composer: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        api.parse_spec({"regions": [primary()], "workers": {"composer": composer}})
    errors = caught.value.errors()
    where = ".".join(["workers", "composer", *([field] if field else [])])
    assert [".".join(str(p) for p in e["loc"]) for e in errors] == [where]
    assert words in errors[0]["msg"]


def test_the_cel_rule_says_what_the_model_says() -> None:
    """The API server refuses templates without a composer with the model's own words."""
    schema = api.ComposerSpec.model_json_schema()
    rules = schema["x-kubernetes-validations"]
    assert [r["fieldPath"] for r in rules] == [".templatesConfigMap"]
    assert rules[0]["message"].startswith("spec.workers.composer.templatesConfigMap needs")
