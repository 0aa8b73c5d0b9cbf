"""Pure builders of a managed NATS cluster, one module per owned object.

`desired_nats_objects(ctx, passwords)` lists, per managed region in spec order: the
configuration Secret, the headless and client Services, the StatefulSet, its
PodDisruptionBudget and (when the cluster owns NetworkPolicies) the servers'
NetworkPolicy; first the per-role credential Secrets that every region shares.
Order matters on first creation: Secrets before the pods that mount them, the headless
Service before the StatefulSet that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge_operator.resources.context import BuildContext
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import (
    Passwords,
    build_config_secret,
    config_digest,
    managed_regions,
)
from surge_operator.resources.nats.credentials import build_credentials_secret
from surge_operator.resources.nats.network_policy import build_nats_network_policy
from surge_operator.resources.nats.pdb import build_nats_pdb
from surge_operator.resources.nats.services import build_client_service, build_headless_service
from surge_operator.resources.nats.statefulset import build_statefulset

__all__ = ["Passwords", "desired_nats_objects", "managed_regions"]


def desired_nats_objects(
    ctx: BuildContext, passwords: Passwords, replicas: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """`replicas`: per region, the server count the scaling steps reached (an existing
    StatefulSet keeps its count; `natsops` moves it one safe step at a time)."""
    regions = managed_regions(ctx)
    if not regions:
        return []
    objects = [build_credentials_secret(ctx, role, passwords[role]) for role in Role]
    for region in regions:
        objects += [
            build_config_secret(ctx, region, passwords),
            build_headless_service(ctx, region),
            build_client_service(ctx, region),
            build_statefulset(
                ctx,
                region,
                replicas=(replicas or {}).get(region.name),
                config_hash=config_digest(ctx, region, passwords),
            ),
            build_nats_pdb(ctx, region),
        ]
        if ctx.owns_network_policy:
            objects.append(build_nats_network_policy(ctx, region))
    return objects
