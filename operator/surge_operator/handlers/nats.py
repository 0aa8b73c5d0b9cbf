"""Reconcile step for managed NATS: credentials, certificates and the per-region objects.

Runs before the rest of the owned objects so a region's servers (and the Secrets the
worker and gateway pods mount) exist first. Passwords are generated once, at the edge
(`secrets.token_urlsafe`), and read back from their Secrets on every later pass; the
builders stay pure. Rolling, reloading and scaling the servers live in
surge_operator.natsops (they need the servers' own view, not just the API server's).
"""

from __future__ import annotations

import secrets

from surge_operator.handlers.deps import Deps
from surge_operator.handlers.state import ClusterState
from surge_operator.logs import get_logger
from surge_operator.resources import BuildContext
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, managed_regions
from surge_operator.resources.nats.credentials import (
    credentials_secret_name,
    passwords_from_secrets,
)
from surge_operator.resources.nats.objects import desired_nats_objects

log = get_logger()

PASSWORD_BYTES = 24


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


async def load_passwords(deps: Deps, ctx: BuildContext) -> Passwords:
    existing = {
        role: await deps.kube.read_secret(ctx.namespace, credentials_secret_name(ctx.name, role))
        for role in Role
    }
    return passwords_from_secrets(existing, generate_password)


async def apply_managed_nats(deps: Deps, ctx: BuildContext, cs: ClusterState) -> int:
    """Apply every managed region's objects; returns how many the API server changed."""
    if not managed_regions(ctx):
        return 0
    manager = deps.config.apply.field_manager
    passwords = await load_passwords(deps, ctx)
    changed = 0
    for obj in desired_nats_objects(ctx, passwords):
        result = await deps.kube.apply(obj, field_manager=manager)
        key = (obj["kind"], obj["metadata"]["name"])
        rv = (result.get("metadata") or {}).get("resourceVersion")
        if key in cs.resource_versions and cs.resource_versions[key] != rv:
            changed += 1
        cs.resource_versions[key] = rv
    if changed:
        log.info("managed_nats_applied", changed=changed)
    return changed
