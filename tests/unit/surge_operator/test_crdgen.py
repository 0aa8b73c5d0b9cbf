"""The generated CRD is current, structural and valid as a Kubernetes object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from surge_operator import crdgen

ROOT = Path(__file__).resolve().parents[3]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk(value, f"{path}[{i}]"))
    return found


def schema() -> dict[str, Any]:
    version = crdgen.build_crd()["spec"]["versions"][0]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def test_committed_crd_matches_the_models() -> None:
    committed = (ROOT / "crds" / "messagingcluster.yaml").read_text()
    assert committed == crdgen.render_crd_yaml(), (
        "crds/messagingcluster.yaml is stale: run `surge crds > crds/messagingcluster.yaml`"
    )


def test_chart_carries_the_same_crd_as_an_upgradable_template() -> None:
    template = (ROOT / crdgen.CHART_CRD_TEMPLATE).read_text()
    assert template == crdgen.render_chart_crd_template(), "chart CRD is stale: run `make crds`"
    assert not (ROOT / "charts" / "surge" / "crds").exists(), "Helm never upgrades crds/"


def test_chart_crd_template_is_the_crd_behind_the_install_switch() -> None:
    lines = crdgen.render_chart_crd_template().splitlines()
    assert lines[1] == "{{- if .Values.crds.install }}"
    assert lines[-1] == "{{- end }}"
    body = "\n".join(line for line in lines if "{{" not in line)
    crd = yaml.safe_load(body)
    assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
    assert crd == crdgen.build_crd()


def test_schema_has_no_json_schema_only_constructs() -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "const"}
    for path, node in walk(schema()):
        if path.endswith("/properties"):
            continue  # keys here are field names, not schema keywords
        bad = forbidden & node.keys()
        assert not bad, f"{path} has {bad}"


def test_every_schema_node_is_typed_or_explicitly_open() -> None:
    props = schema()["properties"]
    for root in ("spec", "status"):
        for path, node in walk(props[root], root):
            if path.endswith("/properties") or "x-kubernetes-validations" in path:
                continue
            if path.endswith("list-map-keys") or path.endswith("/required"):
                continue
            if path.endswith("/default") or "/default/" in path or "/default[" in path:
                continue
            assert "type" in node or node.get("x-kubernetes-int-or-string"), (
                f"{path} has no type: {node}"
            )


def test_exclusive_bounds_are_openapi_v3_0_booleans() -> None:
    for path, node in walk(schema()):
        for flag in ("exclusiveMinimum", "exclusiveMaximum"):
            if flag in node:
                assert node[flag] is True, path


def test_cel_rules_name_the_fields() -> None:
    spec = schema()["properties"]["spec"]
    rules = (
        spec["x-kubernetes-validations"]
        + spec["properties"]["autoscaling"]["x-kubernetes-validations"]
    )
    messages = " ".join(r["message"] for r in rules)
    assert "spec.regions" in messages
    assert "spec.autoscaling.minReplicas" in messages


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    crd = yaml.safe_load(crdgen.render_crd_yaml())
    kubernetes_validate.validate(crd, "1.30", strict=True)


def test_scale_subresource_and_printer_columns() -> None:
    version = crdgen.build_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[:5] == ["Phase", "Region", "Replicas", "Desired", "Backlog"]
    assert "P95-Wait" in names
    assert names[-1] == "Age"


def test_readme_reference_matches_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    assert crdgen.REFERENCE_START in readme
    assert readme == crdgen.embed_reference(readme), "README reference is stale: run `make crds`"
