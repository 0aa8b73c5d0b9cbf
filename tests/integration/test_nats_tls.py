"""TLS on a real 3-server cluster running the operator's generated configuration, with
certificates from the operator's own CA (surge_operator.natspki): routes verify each
other, the operator and the data plane connect through `nats.tls`, a client that does not
trust the CA is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from surge_operator.api import parse_spec
from surge_operator.jetstream import NatsAuth
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.natspki import issue, new_ca, secret_data
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.provision import provision_pipeline
from surge_workers.settings import NatsSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORDS = Passwords({role: f"secret-{role.value}" for role in Role})
SPEC = {
    "regions": [{"name": "east", "role": "primary", "nats": {"tls": True, "managed": {}}}],
}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNatsCluster, str]]:
    root = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca = new_ca("test CA", now)
    for kind in ("client", "route"):
        pair = issue(ca, ["localhost", "127.0.0.1"], now)
        (root / "tls" / kind).mkdir(parents=True)
        for key, value in secret_data(pair, ca.cert_pem).items():
            (root / "tls" / kind / key).write_text(value)
    ctx = BuildContext(name="support", namespace="team-a", uid="u", spec=parse_spec(SPEC))
    config = server_config(ctx, ctx.spec.regions[0], PASSWORDS)
    with LocalNatsCluster(config, 3, name="east", root=root, tls_dir=root / "tls") as cluster:
        yield cluster, ca.cert_pem


async def test_operator_provisions_an_r3_stream_over_tls_routes(
    tls_cluster: tuple[LocalNatsCluster, str],
) -> None:
    cluster, ca_pem = tls_cluster
    ctx = BuildContext(name="support", namespace="team-a", uid="u", spec=parse_spec(SPEC))
    auth = NatsAuth(user="operator", password=PASSWORDS[Role.OPERATOR], ca_pem=ca_pem)
    nc = await nats.connect(servers=cluster.urls, **auth.connect_options())
    try:
        # R3 needs a meta leader elected over the TLS routes of all three servers.
        js = nc.jetstream(timeout=10)
        config = pipeline_config(ctx.stream, ctx.spec)
        assert config.replicas == 3
        await provision_pipeline(js, config)
        info = await js.stream_info(config.stream)
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2
    finally:
        await nc.close()


async def test_workers_connect_with_the_ca_file_from_their_settings(
    tls_cluster: tuple[LocalNatsCluster, str], tmp_path: Path
) -> None:
    cluster, ca_pem = tls_cluster
    (tmp_path / "ca.crt").write_text(ca_pem)
    settings = NatsSettings.from_env(
        {
            "SURGE_NATS_URL": cluster.urls[0],
            "SURGE_NATS_USER": "worker",
            "SURGE_NATS_PASSWORD": PASSWORDS[Role.WORKER],
            "SURGE_NATS_CA_FILE": str(tmp_path / "ca.crt"),
        }
    )
    nc = await nats.connect(**settings.connect_options(), allow_reconnect=False)
    try:
        await nc.flush(timeout=2)
        assert nc.is_connected
    finally:
        await nc.close()
    without_ca = NatsSettings.from_env(
        {
            "SURGE_NATS_URL": cluster.urls[0],
            "SURGE_NATS_USER": "worker",
            "SURGE_NATS_PASSWORD": PASSWORDS[Role.WORKER],
        }
    )
    with pytest.raises((OSError, nats.errors.Error)):
        await nats.connect(
            **without_ca.connect_options(), allow_reconnect=False, max_reconnect_attempts=1
        )


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    tls_cluster: tuple[LocalNatsCluster, str],
) -> None:
    cluster, _ = tls_cluster
    with pytest.raises((OSError, nats.errors.Error)):
        await nats.connect(
            cluster.urls[0],
            user="client",
            password=PASSWORDS[Role.CLIENT],
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=2,
        )
