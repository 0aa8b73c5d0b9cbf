"""Every shape of the generated configuration is accepted by the real nats-server
(`nats-server -t`), not only by our renderer."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config_text
from surge_workers.natsserver import find_nats_server

pytestmark = [pytest.mark.integration]

PASSWORDS = Passwords({role: f"pw-{role.value}" for role in Role})


@pytest.mark.parametrize(
    ("nats", "region"),
    [
        ({"managed": {}}, 0),
        ({"managed": {}}, 1),  # the leafnode spoke
        ({"managed": {"syncInterval": "2m"}}, 0),
        ({"managed": {"syncInterval": "500ms", "servers": 1}}, 0),
        ({"managed": {"servers": 5}, "tls": True}, 1),
    ],
)
def test_generated_config_is_valid_for_nats_server(
    nats: dict[str, Any], region: int, tmp_path: Path
) -> None:
    spec = parse_spec(
        {
            "regions": [
                {"name": "east", "role": "primary", "nats": nats},
                {"name": "west", "role": "standby", "nats": nats},
            ]
        }
    )
    ctx = BuildContext(name="support", namespace="team-a", uid="u", spec=spec)
    conf = tmp_path / "nats.conf"
    conf.write_text(server_config_text(ctx, spec.regions[region], PASSWORDS))
    if nats.get("tls"):  # the pod mounts these; -t opens them
        for kind in ("client", "route"):
            (tmp_path / kind).mkdir()
        text = conf.read_text().replace("/etc/nats/tls", str(tmp_path))
        conf.write_text(text)
        import datetime as dt

        from surge_operator.natspki import issue, new_ca, secret_data

        now = dt.datetime.now(dt.UTC)
        ca = new_ca("t", now)
        for kind in ("client", "route"):
            for key, value in secret_data(issue(ca, ["localhost"], now), ca.cert_pem).items():
                (tmp_path / kind / key).write_text(value)
    out = subprocess.run(
        [find_nats_server(), "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        env={"POD_NAME": "support-nats-east-0"},
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
