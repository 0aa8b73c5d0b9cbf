"""Invalid examples for every MessagingCluster field, generated from the CRD's own schema:
a wrong type for each leaf, one past each bound, a value outside each enum, a string that
breaks each pattern or length. The same cases are checked against the pydantic model
(fast tier) and against the real API server (e2e), so the two can never drift apart."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "messagingcluster.yaml"

#: A valid MessagingCluster every case starts from (one primary region, defaults).
BASE: dict[str, Any] = {
    "apiVersion": "surge.dev/v1alpha1",
    "kind": "MessagingCluster",
    "metadata": {"name": "cases"},
    "spec": {
        "regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://n:4222"}}],
        "priorities": [{"name": "critical", "latencyTargetSeconds": 2}],
        "workers": {"env": [{"name": "A", "value": "b"}]},
    },
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    path: Path_
    value: Any
    why: str

    @property
    def dotted(self) -> str:
        """The field as the API server names it: spec.regions[0].name."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    @property
    def id(self) -> str:
        return f"{self.dotted}={self.why}"

    def manifest(self) -> dict[str, Any]:
        return self.apply(copy.deepcopy(BASE))

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Set this case's value in ``doc`` (in place) and return it."""
        node: Any = doc
        for here, nxt in zip(self.path, self.path[1:], strict=False):
            if isinstance(here, int):
                while len(node) <= here:
                    node.append({})
                node = node[here]
            else:
                node = node.setdefault(here, [] if isinstance(nxt, int) else {})
        last = self.path[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append({})
        node[last] = self.value
        return doc


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec: dict[str, Any] = schema["properties"]["spec"]
    return spec


def _bad_values(node: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"):
        return
    wrong_type = {
        "integer": "seven",
        "number": "fast",
        "boolean": "maybe",
        "string": 12345,
        "array": "not-a-list",
        "object": "not-an-object",
    }
    if kind in wrong_type:
        yield wrong_type[kind], "wrong-type"
    if "enum" in node:
        yield (99 if kind == "integer" else "not-an-option"), "not-in-enum"
    if "minimum" in node and kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.001
        low = node["minimum"] if node.get("exclusiveMinimum") else node["minimum"] - step
        yield low, "below-minimum"
    if "maximum" in node and kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.001
        high = node["maximum"] if node.get("exclusiveMaximum") else node["maximum"] + step
        yield high, "above-maximum"
    if kind == "string":
        if node.get("minLength", 0) >= 1:
            yield "", "empty"
        if "maxLength" in node:
            yield "a" * (node["maxLength"] + 1), "too-long"
        if "pattern" in node and not re.search(node["pattern"], "Not Valid!"):
            yield "Not Valid!", "pattern"
    if kind == "array" and node.get("minItems", 0) >= 1:
        yield [], "too-few-items"


def cases(
    node: dict[str, Any] | None = None, path: Path_ = ("spec",), *, depth: int = 0
) -> Iterator[Case]:
    """Every leaf (and every bounded list) of the spec, with each way to get it wrong.
    Pod template overrides are a copy of Kubernetes' own pod fields: only their top level
    is covered here, their own tests cover the rest."""
    node = spec_schema() if node is None else node
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        if path[-1] == "template" and depth > 0:
            for value, why in _bad_values({"type": "object"}):
                yield Case(path, value, why)
            return
        for name, child in node["properties"].items():
            yield from cases(child, (*path, name), depth=depth + 1)
        return
    if kind == "array" and node.get("items", {}).get("type") == "object":
        for value, why in _bad_values(node):
            yield Case(path, value, why)
        yield from cases(node["items"], (*path, 0), depth=depth + 1)
        return
    for value, why in _bad_values(node):
        yield Case(path, value, why)


@dataclass(frozen=True)
class RuleCase:
    """A manifest that breaks one CEL rule (a rule across fields, which the per-field cases
    above cannot reach), with the rule's own message."""

    name: str
    changes: tuple[Case, ...]
    message: str  # the CEL rule's message (what the API server answers)
    model_words: str = ""  # what the pydantic model's error says instead, where it differs

    @property
    def model_message(self) -> str:
        return self.model_words or self.message

    def manifest(self) -> dict[str, Any]:
        doc = copy.deepcopy(BASE)
        for change in self.changes:
            change.apply(doc)
        return doc


_EAST_URL = {"url": "nats://n:4222"}
_WEST = {"name": "west", "role": "standby", "nats": _EAST_URL}

#: One violation per create-time CEL rule of the CRD (transition rules, which use oldSelf,
#: are exercised on updates in tests/e2e/test_crd_validation.py). test_cel_rules checks
#: that every such rule in the generated CRD has a case here.
RULE_CASES: tuple[RuleCase, ...] = (
    RuleCase(
        "nats-neither-url-nor-managed",
        (Case(("spec", "regions", 0, "nats"), {}, ""),),
        "spec.regions[].nats: set exactly one of url (external NATS) or managed",
    ),
    RuleCase(
        "nats-both-url-and-managed",
        (Case(("spec", "regions", 0, "nats"), {**_EAST_URL, "managed": {}}, ""),),
        "spec.regions[].nats: set exactly one of url (external NATS) or managed",
    ),
    RuleCase(
        "secret-through-worker-env",
        (
            Case(
                ("spec", "workers", "env", 0, "valueFrom"),
                {"secretKeyRef": {"name": "x", "key": "y"}},
                "",
            ),
        ),
        "spec.workers.env[].valueFrom.secretKeyRef is not allowed",
    ),
    *(
        RuleCase(
            f"secret-through-{where}-template-env",
            (
                *extra,
                Case(
                    (*path, "template", "env"),
                    [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}],
                    "",
                ),
            ),
            "env valueFrom.secretKeyRef is not allowed in a pod template",
        )
        for where, path, extra in (
            ("workers", ("spec", "workers"), ()),
            ("gateway", ("spec", "gateway"), ()),
            (
                "nats",
                ("spec", "regions", 0, "nats", "managed"),
                (Case(("spec", "regions", 0, "nats"), {"managed": {}}, ""),),
            ),
        )
    ),
    RuleCase(
        "templates-without-composer",
        (
            Case(
                ("spec", "workers", "composer"),
                {"enabled": False, "templatesConfigMap": "replies"},
                "",
            ),
        ),
        "spec.workers.composer.templatesConfigMap needs spec.workers.composer.enabled",
    ),
    RuleCase(
        "min-above-max-replicas",
        (Case(("spec", "autoscaling"), {"minReplicas": 5, "maxReplicas": 2}, ""),),
        "spec.autoscaling.minReplicas must be less than or equal to maxReplicas",
        "autoscaling.minReplicas (5) must be less than or equal to autoscaling.maxReplicas (2)",
    ),
    RuleCase(
        "backup-to-s3-and-pvc",
        (
            Case(
                ("spec", "backup"),
                {
                    "schedule": "0 * * * *",
                    "target": {
                        "pvc": {"claimName": "b"},
                        "s3": {
                            "endpoint": "http://s3:9000",
                            "bucket": "bkp",
                            "credentials": {"secretName": "s3"},
                        },
                    },
                },
                "",
            ),
        ),
        "exactly one of s3 or pvc must be set",
    ),
    RuleCase(
        "backup-to-nowhere",
        (Case(("spec", "backup"), {"schedule": "0 * * * *", "target": {}}, ""),),
        "exactly one of s3 or pvc must be set",
    ),
    RuleCase(
        "two-primaries",
        (Case(("spec", "regions", 1), {**_WEST, "role": "primary"}, ""),),
        "spec.regions must contain exactly one region with role primary",
    ),
    RuleCase(
        "no-primary",
        (Case(("spec", "regions", 0, "role"), "standby", ""),),
        "spec.regions must contain exactly one region with role primary",
    ),
    RuleCase(
        "drain-an-unknown-region",
        (
            Case(("spec", "regions", 1), _WEST, ""),
            Case(("spec", "drainedRegions"), ["north"], ""),
        ),
        "spec.drainedRegions must name regions of spec.regions",
        "spec.drainedRegions names unknown regions: ['north']",
    ),
    RuleCase(
        "drain-every-region",
        (Case(("spec", "drainedRegions"), ["east"], ""),),
        "spec.drainedRegions may not drain every region",
    ),
    RuleCase(
        "more-replicas-than-servers",
        (
            Case(("spec", "regions", 0, "nats"), {"managed": {"servers": 1}}, ""),
            Case(("spec", "stream", "replicas"), 3, ""),
        ),
        "spec.stream.replicas must not exceed nats.managed.servers in any region",
        "spec.stream.replicas (3) must not exceed spec.regions[east]",
    ),
    RuleCase(
        "sheddable-critical",
        (Case(("spec", "priorities", 0, "sheddable"), True, ""),),
        "spec.priorities: critical may not be sheddable",
    ),
)


def create_rules() -> list[dict[str, Any]]:
    """Every CEL rule of the spec that applies on create (no oldSelf)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations", []):
                if "oldSelf" not in rule["rule"]:
                    found.append(rule)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec_schema())
    return found
