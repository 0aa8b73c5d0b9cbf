"""values.schema.json is generated from the chart-values model, is current, and accepts
exactly what values.yaml holds; the data-plane pod template is the CRD's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from surge_operator.chart_values import ChartValues, render_values_schema

CHART = Path(__file__).resolve().parents[3] / "charts" / "surge"


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def test_committed_schema_is_current() -> None:
    assert (CHART / "values.schema.json").read_text() == render_values_schema(), (
        "charts/surge/values.schema.json is stale: run `make crds`"
    )


def test_values_yaml_validates_against_the_schema_and_the_model() -> None:
    jsonschema.Draft7Validator(schema()).validate(values())
    ChartValues.model_validate(values())


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("image", "pullPolicy"), "Sometimes"),
        (("operator", "replicas"), "two"),
        (("operator", "clusterWide"), "yes"),
        (("dataPlane", "podTemplate"), {"nodeSelektor": {}}),
        (("dataPlane", "podTemplate"), {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
        (("crds", "instal"), True),
        (("metrics", "serviceMonitor", "interval"), "soon"),
    ],
)
def test_the_schema_refuses_typos_and_wrong_types(path: tuple[str, ...], bad: object) -> None:
    doc = values()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(doc)
