"""Apply `PodTemplate` overrides to a pod template the builders made (pure).

Two layers, most general first: the operator-wide default (the chart's
`dataPlane.podTemplate`) and the component's own template in the MessagingCluster
(`spec.workers.template`, `spec.gateway.template`; managed NATS servers use the same
function). Within the merge:

* maps (labels, annotations, nodeSelector) merge key by key, the later layer winning;
* named lists (env, volumes, volumeMounts, imagePullSecrets) merge by name, later wins;
* other lists (tolerations, topologySpreadConstraints) add up;
* resources and priorityClassName are replaced whole by the later layer;
* affinity merges per kind: a given nodeAffinity replaces Surge's region preference,
  podAffinity / podAntiAffinity are added.

The operator's identity labels and its own volumes always win over a template: a label
override could otherwise detach pods from their Deployment's selector.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from surge_operator.api_pods import PodTemplate


def _dump(template: PodTemplate) -> dict[str, Any]:
    return template.model_dump(by_alias=True, exclude_none=True)


def _by_name(*lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for items in lists:
        for item in items:
            merged.pop(item["name"], None)  # a later definition moves to the end
            merged[item["name"]] = item
    return list(merged.values())


def merge_templates(*layers: PodTemplate | None) -> dict[str, Any]:
    """The layers folded into one override dict (camelCase, Kubernetes field names)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        data = _dump(layer)
        for key, value in data.items():
            if key == "metadata":
                meta = out.setdefault("metadata", {})
                for part in ("labels", "annotations"):
                    if value.get(part):
                        meta[part] = {**meta.get(part, {}), **value[part]}
            elif key == "nodeSelector":
                out[key] = {**out.get(key, {}), **value}
            elif key in ("env", "volumes", "volumeMounts", "imagePullSecrets"):
                if key == "volumeMounts":
                    out[key] = _by_mount_path(out.get(key, []), value)
                else:
                    out[key] = _by_name(out.get(key, []), value)
            elif key in ("tolerations", "topologySpreadConstraints"):
                out[key] = out.get(key, []) + value
            elif key == "affinity":
                out[key] = {**out.get(key, {}), **value}
            else:  # resources, priorityClassName
                out[key] = value
    return out


def _by_mount_path(*lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for items in lists:
        for item in items:
            merged.pop(item["mountPath"], None)
            merged[item["mountPath"]] = item
    return list(merged.values())


def apply_overrides(
    pod: dict[str, Any], override: dict[str, Any], *, selector: dict[str, str]
) -> dict[str, Any]:
    """A copy of `pod` (a PodTemplateSpec) with `override` (from `merge_templates`) applied.

    `selector` is the component's selector labels, which the override may not change; a
    topology spread constraint without a labelSelector counts this component's pods.
    """
    if not override:
        return pod
    out = copy.deepcopy(pod)
    meta = out.setdefault("metadata", {})
    spec = out["spec"]
    container = spec["containers"][0]
    extra = override.get("metadata", {})
    meta["labels"] = {**extra.get("labels", {}), **meta.get("labels", {}), **selector}
    if extra.get("annotations"):
        meta["annotations"] = {**extra["annotations"], **meta.get("annotations", {})}
    if "nodeSelector" in override:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **override["nodeSelector"]}
    if "tolerations" in override:
        spec["tolerations"] = spec.get("tolerations", []) + override["tolerations"]
    if "affinity" in override:
        spec["affinity"] = {**spec.get("affinity", {}), **override["affinity"]}
    if "topologySpreadConstraints" in override:
        spec["topologySpreadConstraints"] = [
            {"labelSelector": {"matchLabels": dict(selector)}, **c}
            for c in override["topologySpreadConstraints"]
        ]
    if "priorityClassName" in override:
        spec["priorityClassName"] = override["priorityClassName"]
    if "imagePullSecrets" in override:
        spec["imagePullSecrets"] = _by_name(
            spec.get("imagePullSecrets", []), override["imagePullSecrets"]
        )
    if "resources" in override:
        container["resources"] = override["resources"]
    if "env" in override:
        container["env"] = _by_name(container.get("env", []), override["env"])
    if "volumes" in override:
        # The operator's own volumes (credentials, /tmp) keep their definitions.
        own = {v["name"] for v in spec.get("volumes", [])}
        spec["volumes"] = spec.get("volumes", []) + [
            v for v in override["volumes"] if v["name"] not in own
        ]
    if "volumeMounts" in override:
        own_paths = {m["mountPath"] for m in container.get("volumeMounts", [])}
        container["volumeMounts"] = container.get("volumeMounts", []) + [
            m for m in override["volumeMounts"] if m["mountPath"] not in own_paths
        ]
    return out
