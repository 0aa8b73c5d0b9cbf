"""NATS authentication the way a production NATS asks for it, against real nats-servers:
a `.creds` file (user JWT + nkey seed, server in operator mode) and a bare nkey user.
`surge-worker` and the data plane's connect path must get in with the right credentials
and be refused without them (nkeys is a dependency: nats-py needs it for both)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import pytest
from tests.integration.dataplane_support import unique_pipeline

from surge_workers.logs import get_logger
from surge_workers.natsserver import NatsServer
from surge_workers.provision import provision_pipeline
from surge_workers.runtime import connect
from surge_workers.settings import NatsSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def new_key(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def mint_jwt(signer: nkeys.KeyPair, subject: str, kind: str, extra: dict[str, Any]) -> str:
    """A NATS v2 JWT: ed25519-nkey signed claims (the format nsc writes)."""
    header = {"typ": "JWT", "alg": "ed25519-nkey"}
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": signer.public_key.decode(),
        "name": kind,
        "sub": subject,
        "nats": {"type": kind, "version": 2, **extra},
    }
    body = json.dumps(claims, separators=(",", ":")).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}"


def creds_file(path: Path, user_jwt: str, seed: bytes) -> Path:
    path.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    path.chmod(0o600)
    return path


async def test_a_creds_file_authenticates_against_an_operator_mode_server(
    tmp_path: Path,
) -> None:
    operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    system = new_key(nkeys.PREFIX_BYTE_ACCOUNT)  # JetStream needs one, without JetStream
    user = new_key(nkeys.PREFIX_BYTE_USER)
    stranger = new_key(nkeys.PREFIX_BYTE_USER)
    operator_jwt = mint_jwt(operator, operator.public_key.decode(), "operator", {})
    limits = {
        "subs": -1,
        "data": -1,
        "payload": -1,
        "imports": -1,
        "exports": -1,
        "wildcards": True,
        "conn": -1,
        "leaf": -1,
        "mem_storage": -1,
        "disk_storage": -1,
        "streams": -1,
        "consumer": -1,
    }
    account_jwt = mint_jwt(operator, account.public_key.decode(), "account", {"limits": limits})
    system_jwt = mint_jwt(operator, system.public_key.decode(), "account", {})
    user_jwt = mint_jwt(
        account, user.public_key.decode(), "user", {"subs": -1, "data": -1, "payload": -1}
    )
    # Signed by a key the account does not know: must be refused.
    forged_jwt = mint_jwt(stranger, user.public_key.decode(), "user", {})
    config = tmp_path / "operator.conf"
    config.write_text(
        f"operator: {operator_jwt}\n"
        f"system_account: {system.public_key.decode()}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f"  {account.public_key.decode()}: {account_jwt}\n"
        f"  {system.public_key.decode()}: {system_jwt}\n"
        "}\n"
    )
    good = creds_file(tmp_path / "good.creds", user_jwt, user.seed)
    forged = creds_file(tmp_path / "forged.creds", forged_jwt, user.seed)
    with NatsServer(store_dir=tmp_path / "js", extra_args=("-c", str(config))) as server:
        log = get_logger("test")
        nc = await connect(
            NatsSettings(servers=(server.url,), creds_file=str(good)), "creds-test", log
        )
        connected = nc.is_connected
        result = await provision_pipeline(nc.jetstream(), unique_pipeline())
        await nc.close()
        refused = await _refused(server.url, user_credentials=str(forged))
        anonymous = await _refused(server.url)

    assert connected
    assert result.created  # JetStream in the account the creds belong to
    assert refused
    assert anonymous


async def test_a_bare_nkey_user_authenticates_and_provisions(tmp_path: Path) -> None:
    user = new_key(nkeys.PREFIX_BYTE_USER)
    other = new_key(nkeys.PREFIX_BYTE_USER)
    config = tmp_path / "nkey.conf"
    config.write_text(f"authorization {{ users = [ {{ nkey: {user.public_key.decode()} }} ] }}\n")
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(user.seed)
    other_seed = tmp_path / "other.nk"
    other_seed.write_bytes(other.seed)
    with NatsServer(store_dir=tmp_path / "js", extra_args=("-c", str(config))) as server:
        settings = NatsSettings.from_env(
            {"SURGE_NATS_URL": server.url, "SURGE_NATS_NKEY_FILE": str(seed_file)}
        )
        nc = await connect(settings, "nkey-test", get_logger("test"))
        # The data plane's JetStream setup over the nkey-authenticated connection.
        result = await provision_pipeline(nc.jetstream(), unique_pipeline())
        await nc.close()
        wrong = await _refused(server.url, nkeys_seed=str(other_seed))
        anonymous = await _refused(server.url)

    assert result.created
    assert wrong
    assert anonymous


async def _refused(url: str, **options: Any) -> bool:
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                connect_timeout=2,
                **options,
            ),
            timeout=10,
        )
    except (nats.errors.Error, OSError, TimeoutError):
        return True
    await nc.close()
    return False
