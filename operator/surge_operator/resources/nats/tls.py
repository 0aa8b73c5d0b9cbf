"""Which Secrets hold a managed region's certificates (cert-manager's layout: tls.crt,
tls.key, ca.crt). The spec may name them; otherwise the operator issues them from its own
CA for the cluster (surge_operator.natsops.pki) under the names below."""

from __future__ import annotations

from surge_operator.api import Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.nats.names import nats_name


def generated_ca_secret(ctx: BuildContext) -> str:
    return f"{ctx.name}-nats-ca"


def generated_tls_secret(ctx: BuildContext, region: Region, kind: str) -> str:
    return f"{nats_name(ctx.name, region.name)}-tls-{kind}"


def client_tls_secret(ctx: BuildContext, region: Region) -> str:
    managed = region.nats.managed
    given = managed.tls.client_secret if managed and managed.tls else None
    return given or generated_tls_secret(ctx, region, "client")


def route_tls_secret(ctx: BuildContext, region: Region) -> str:
    managed = region.nats.managed
    given = managed.tls.route_secret if managed and managed.tls else None
    return given or generated_tls_secret(ctx, region, "route")
