"""Models -> Kubernetes structural OpenAPI schema -> CustomResourceDefinition.

pydantic's JSON Schema is not a structural schema as it stands. This module converts it
once, in one place:

- `$ref`s are inlined (structural schemas allow no references);
- `anyOf: [X, {type: null}]` becomes X with `nullable: true`;
- `anyOf: [integer, string]` becomes `x-kubernetes-int-or-string`;
- free-form maps (`dict[str, Any]`) become `x-kubernetes-preserve-unknown-fields`;
- titles go, descriptions stay; object defaults become `{}` so the API server defaults
  the scalars inside without duplicating them here.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from surge_operator import api

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "nullable",
}


class SchemaConversionError(ValueError):
    """The models use a JSON Schema construct that has no structural equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model, with camelCase field names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    return _convert(raw, defs)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    # Sibling keys (description, default) override the referenced definition's.
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        return _convert_any_of(node, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _convert({**_resolve(node["allOf"][0], defs), **rest}, defs)
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    _exclusive_bounds_to_openapi_v3_0(out)
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties")
        additional = node.get("additionalProperties")
        if props:
            out["properties"] = {name: _convert(sub, defs) for name, sub in props.items()}
            if isinstance(out.get("default"), dict):
                out["default"] = {}
        elif isinstance(additional, dict) and additional:
            out["additionalProperties"] = _convert(additional, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}), defs)
    elif kind is None and not out.get("x-kubernetes-int-or-string"):
        raise SchemaConversionError(f"schema node without a type: {sorted(node)}")
    return out


def _convert_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    options = [_resolve(o, defs) for o in node["anyOf"]]
    non_null = [o for o in options if o.get("type") != "null"]
    nullable = len(non_null) < len(options)
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    if sorted(o.get("type", "") for o in non_null) == ["integer", "string"]:
        out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        out.update({k: v for k, v in siblings.items() if k in _KEEP})
    elif len(non_null) == 1:
        out = _convert({**non_null[0], **siblings}, defs)
    else:
        raise SchemaConversionError(
            f"union of {[o.get('type') for o in non_null]} is not structural"
        )
    if nullable:
        out["nullable"] = True
        if out.get("default") is None:
            out.pop("default", None)
    return out


def _exclusive_bounds_to_openapi_v3_0(out: dict[str, Any]) -> None:
    """JSON Schema 2020 writes `exclusiveMinimum: 0`; OpenAPI 3.0 wants a bound plus a flag."""
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value = out.get(flag)
        if isinstance(value, bool) or value is None:
            continue
        out[bound] = value
        out[flag] = True


class _NoAliasDumper(yaml.SafeDumper):
    """Shared lists (e.g. `required`) must be written out, not as YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Region", "type": "string", "jsonPath": ".status.activeRegion"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Backlog", "type": "integer", "jsonPath": ".status.backlog"},
        {
            "name": "P95-Wait",
            "type": "number",
            "jsonPath": ".status.p95Wait",
            "description": "p95 queue wait in seconds",
        },
        {"name": "Level", "type": "integer", "jsonPath": ".status.degradationLevel"},
        {
            "name": "NATS",
            "type": "string",
            "priority": 1,
            "description": "NatsReady: managed servers current, every stream current.",
            "jsonPath": '.status.conditions[?(@.type=="NatsReady")].status',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> dict[str, Any]:
    """The MessagingCluster CustomResourceDefinition as a dict."""
    spec_schema = structural_schema(api.MessagingClusterSpec)
    status_schema = structural_schema(api.MessagingClusterStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "surge", "app.kubernetes.io/part-of": "surge"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["surge"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "A NATS JetStream support-messaging pipeline with autoscaled "
                                "workers, graceful degradation and regional failover."
                            ),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    header = "# GENERATED by `surge crds` from surge_operator.api. Do not edit by hand.\n"
    return header + yaml.dump(build_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100)


CHART_CRD_TEMPLATE = "charts/surge/templates/crds/messagingcluster.yaml"


def render_chart_crd_template() -> str:
    """The same CRD as a chart template, so it installs *and upgrades* with the release.

    Helm never upgrades files under a chart's crds/ directory; KEDA and cert-manager ship
    CRDs as templates behind `crds.install`, annotated `helm.sh/resource-policy: keep`
    (`crds.keep`) so `helm uninstall` never deletes every MessagingCluster with them.
    """
    body = yaml.dump(build_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100)
    if "{{" in body or "}}" in body:
        raise ValueError("the CRD text contains template delimiters; escape them first")
    helm_metadata = (
        "metadata:\n"
        "  {{- if .Values.crds.keep }}\n"
        "  annotations:\n"
        "    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n"
    )
    body = body.replace("metadata:\n", helm_metadata, 1)
    return (
        "{{- /* GENERATED by `make crds` from surge_operator.api. Do not edit by hand. */}}\n"
        "{{- if .Values.crds.install }}\n" + body + "{{- end }}\n"
    )


def render_reference_markdown() -> str:
    """The CRD reference as Markdown tables (the README embeds it; a test keeps it current)."""
    lines: list[str] = []
    for root, model in (("spec", api.MessagingClusterSpec), ("status", api.MessagingClusterStatus)):
        lines += [f"| `{root}` field | type | default | description |", "|---|---|---|---|"]
        lines += _reference_rows(structural_schema(model), root)
        lines.append("")
    return "\n".join(lines)


def _reference_rows(node: dict[str, Any], path: str) -> list[str]:
    rows: list[str] = []
    props: dict[str, Any] = node.get("properties", {})
    if node.get("type") == "array":
        props = node.get("items", {}).get("properties", {})
        path += "[]"
    for name, sub in props.items():
        field = f"{path}.{name}"
        rows.append(
            f"| `{field}` | {_type_words(sub)} | {_default_words(sub)} | "
            f"{sub.get('description', '').replace('|', '/')} |"
        )
        if sub.get("type") in ("object", "array"):
            rows += _reference_rows(sub, field)
    return rows


def _type_words(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    words = str(node.get("type", ""))
    if "enum" in node:
        words = " \\| ".join(f"`{v}`" for v in node["enum"])
    elif node.get("type") == "array":
        words = f"list of {node.get('items', {}).get('type', 'object')}"
    bounds = [
        f"≥ {node['minimum']}" if "minimum" in node else "",
        f"≤ {node['maximum']}" if "maximum" in node else "",
    ]
    bounds = [b for b in bounds if b]
    if node.get("exclusiveMinimum"):
        bounds = [b.replace("≥", ">") for b in bounds]
    if bounds:
        words += f" ({', '.join(bounds)})"
    if node.get("nullable"):
        words += ", optional"
    return words


def _default_words(node: dict[str, Any]) -> str:
    if "default" not in node or node["default"] in ({}, []):
        return ""
    value = node["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


REFERENCE_START = "<!-- crd-reference:start -->"
REFERENCE_END = "<!-- crd-reference:end -->"


def embed_reference(readme: str) -> str:
    """The README with the generated reference between its markers (idempotent)."""
    head, _, rest = readme.partition(REFERENCE_START)
    _, _, tail = rest.partition(REFERENCE_END)
    return f"{head}{REFERENCE_START}\n{render_reference_markdown()}{REFERENCE_END}{tail}"
