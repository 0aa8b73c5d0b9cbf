from __future__ import annotations

from typing import Any

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords

PASSWORDS = Passwords({role: f"pw-{role.value}" for role in Role})


def managed_spec(require_tls: bool = False, **managed: Any) -> dict[str, Any]:
    nats: dict[str, Any] = {"managed": dict(managed), "tls": require_tls}
    return {
        "regions": [
            {"name": "east", "role": "primary", "nats": nats},
            {"name": "west", "role": "standby", "nats": nats},
        ]
    }


def managed_ctx(require_tls: bool = False, **managed: Any) -> BuildContext:
    return BuildContext(
        name="support",
        namespace="team-a",
        uid="uid-1",
        spec=parse_spec(managed_spec(require_tls, **managed)),
    )
