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
from surge_operator.natspki import KeyPair, issue, new_ca, secret_data
from surge_operator.resources import BuildContext
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, managed_regions
from surge_operator.resources.nats.credentials import (
    credentials_secret_name,
    passwords_from_secrets,
)
from surge_operator.resources.nats.names import nats_name
from surge_operator.resources.nats.objects import desired_nats_objects
from surge_operator.resources.nats.tls import (
    CA_KEY,
    CERT_KEY,
    KEY_KEY,
    TlsKind,
    build_tls_secret,
    certificate_names,
    generated_ca_secret,
    generated_tls_secret,
    given_tls_secret,
)

log = get_logger()

PASSWORD_BYTES = 24
TLS_KINDS: tuple[TlsKind, ...] = ("client", "route")


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


async def load_passwords(deps: Deps, ctx: BuildContext) -> Passwords:
    existing = {
        role: await deps.kube.read_secret(ctx.namespace, credentials_secret_name(ctx.name, role))
        for role in Role
    }
    return passwords_from_secrets(existing, generate_password)


async def _ca(deps: Deps, ctx: BuildContext) -> KeyPair:
    """The cluster's CA: read back, or made once (and kept: every issued cert hangs on it)."""
    name = generated_ca_secret(ctx.name)
    data = await deps.kube.read_secret(ctx.namespace, name)
    if data and CERT_KEY in data and KEY_KEY in data:
        return KeyPair(data[CERT_KEY].decode(), data[KEY_KEY].decode())
    ca = new_ca(f"surge {ctx.namespace}/{ctx.name} NATS CA", deps.now())
    secret = build_tls_secret(ctx, name, {CERT_KEY: ca.cert_pem, KEY_KEY: ca.key_pem})
    await deps.kube.apply(secret, field_manager=deps.config.apply.field_manager)
    log.info("nats_ca_created", secret=name)
    return ca


async def ensure_certificates(deps: Deps, ctx: BuildContext) -> None:
    """Issue the client and route certificates that TLS regions need and the spec does
    not name. Existing Secrets are never reissued here (pods hold them)."""
    ca: KeyPair | None = None
    for region in managed_regions(ctx):
        if not region.nats.tls:
            continue
        for kind in TLS_KINDS:
            if given_tls_secret(region, kind) is not None:
                continue
            name = generated_tls_secret(ctx.name, region, kind)
            data = await deps.kube.read_secret(ctx.namespace, name)
            if data and all(k in data for k in (CERT_KEY, KEY_KEY, CA_KEY)):
                continue
            ca = ca or await _ca(deps, ctx)
            names = certificate_names(ctx.name, ctx.namespace, region)
            pair = issue(ca, names, deps.now())
            secret = build_tls_secret(ctx, name, secret_data(pair, ca.cert_pem))
            await deps.kube.apply(secret, field_manager=deps.config.apply.field_manager)
            log.info("nats_certificate_issued", secret=name, region=region.name, kind=kind)


async def apply_managed_nats(deps: Deps, ctx: BuildContext, cs: ClusterState) -> int:
    """Apply every managed region's objects; returns how many the API server changed."""
    if not managed_regions(ctx):
        return 0
    await ensure_certificates(deps, ctx)
    manager = deps.config.apply.field_manager
    passwords = await load_passwords(deps, ctx)
    # An existing StatefulSet keeps its server count: nats_ops moves it one safe step at
    # a time (scale-in needs peer removal and current streams between steps).
    replicas: dict[str, int] = {}
    for region in managed_regions(ctx):
        sts = await deps.kube.get(
            "apps/v1", "StatefulSet", ctx.namespace, nats_name(ctx.name, region.name)
        )
        if sts is not None and (sts.get("spec") or {}).get("replicas") is not None:
            replicas[region.name] = int(sts["spec"]["replicas"])
    changed = 0
    for obj in desired_nats_objects(ctx, passwords, replicas):
        result = await deps.kube.apply(obj, field_manager=manager)
        key = (obj["kind"], obj["metadata"]["name"])
        rv = (result.get("metadata") or {}).get("resourceVersion")
        if key in cs.resource_versions and cs.resource_versions[key] != rv:
            changed += 1
        cs.resource_versions[key] = rv
    if changed:
        log.info("managed_nats_applied", changed=changed)
    return changed
