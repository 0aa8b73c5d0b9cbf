"""One Secret per NATS role (`<cluster>-nats-<role>`, keys `user` and `password`): the
worker pods mount only the worker's, the gateway pods only the gateway's, and users'
clients are handed the `client` Secret. Passwords are generated once by the handler and
never rewritten; the same identities serve every managed region, so a failover needs no
new credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from surge_operator.api import Region, SecretKeyRef
from surge_operator.resources.context import BuildContext
from surge_operator.resources.jetstream import PASSWORD_KEY, USER_KEY
from surge_operator.resources.labels import metadata
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords


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


def passwords_from_secrets(
    existing: Mapping[Role, Mapping[str, bytes] | None], generate: Callable[[], str]
) -> Passwords:
    """Keep every password a Secret already holds (rotating one would lock out running
    pods); `generate` only the missing ones. Pure apart from `generate`."""
    by_role: dict[Role, str] = {}
    for role in Role:
        data = existing.get(role)
        stored = data.get(PASSWORD_KEY) if data else None
        by_role[role] = stored.decode() if stored else generate()
    return Passwords(by_role)
