"""One Secret per NATS role (`<cluster>-nats-<role>`, keys `user` and `password`): the
worker pods mount only the worker's, the gateway pods only the gateway's, and users'
clients are handed the `client` Secret. Passwords are generated once by the handler and
never rewritten; the same identities serve every managed region, so a failover needs no
new credentials."""

from __future__ import annotations

from typing import Any

from surge_operator.api import Region, SecretKeyRef
from surge_operator.resources.context import BuildContext
from surge_operator.resources.jetstream import PASSWORD_KEY, USER_KEY
from surge_operator.resources.labels import metadata
from surge_operator.resources.nats.accounts import Role


def credentials_secret_name(cluster: str, role: Role) -> str:
    return f"{cluster}-nats-{role.value}"


def build_credentials_secret(ctx: BuildContext, role: Role, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(ctx, credentials_secret_name(ctx.name, role), "nats"),
        "type": "Opaque",
        "stringData": {USER_KEY: role.value, PASSWORD_KEY: password},
    }


def credentials_ref(cluster: str, region: Region, role: Role) -> SecretKeyRef | None:
    """The Secret a process of `role` authenticates with in `region`: the role's generated
    Secret when the region is managed, else whatever the spec names (shared by all)."""
    if region.nats.managed is None:
        return region.nats.credentials_secret
    return SecretKeyRef(name=credentials_secret_name(cluster, role), key=PASSWORD_KEY)
