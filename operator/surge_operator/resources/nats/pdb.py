"""PodDisruptionBudget of a managed region: a drain takes at most one server at a time,
so an R3 stream always keeps a quorum (2 of 3) through node maintenance."""

from __future__ import annotations

from typing import Any

from surge_operator.api import Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata
from surge_operator.resources.nats.names import nats_name
from surge_operator.resources.nats.services import nats_selector


def build_nats_pdb(ctx: BuildContext, region: Region) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ctx, nats_name(ctx.name, region.name), "nats"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": nats_selector(ctx, region)},
        },
    }
