"""kwok Stage configuration: kwok's stock "fast" pod stages.

kwok keeps nodes Ready (default node stages) and makes every pod on its nodes Running at
once (nothing runs: the many-node operator benchmark), and finishes their deletion.
"""

from __future__ import annotations

from typing import Any

import yaml

# Adapted from kwok's kustomize/stage/pod/fast/pod-ready.yaml (Apache-2.0).
POD_READY_TEMPLATE = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""


def _stage(name: str, expressions: list[dict[str, Any]], next_: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": expressions},
            "next": next_,
        },
    }


def pod_stages() -> list[dict[str, Any]]:
    ready = _stage(
        "pod-ready",
        [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.podIP", "operator": "DoesNotExist"},
        ],
        {"statusTemplate": POD_READY_TEMPLATE},
    )
    delete = _stage(
        "pod-delete",
        [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
        {"finalizers": {"empty": True}, "delete": True},
    )
    return [ready, delete]


def render() -> str:
    return yaml.safe_dump_all(pod_stages(), sort_keys=False)
