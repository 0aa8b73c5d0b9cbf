"""PodDisruptionBudgets: node drains take at most one worker (or gateway) at a time, so
a maintenance window never empties the pool that is draining a surge."""

from __future__ import annotations

from typing import Any

from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import gateway_name, metadata, selector_labels, worker_name


def build_worker_pdb(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ctx, worker_name(ctx), "worker"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(ctx, "worker")},
        },
    }


def build_gateway_pdb(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ctx, gateway_name(ctx), "gateway"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(ctx, "gateway")},
        },
    }
