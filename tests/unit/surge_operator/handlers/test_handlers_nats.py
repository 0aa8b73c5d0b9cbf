"""The managed-NATS reconcile step against fakes: objects applied, passwords kept."""

from __future__ import annotations

from typing import Any

from handler_fakes import REF, FakeJetStream, FakeKube, make_deps

from surge_operator.handlers.reconcile import reconcile

MANAGED: dict[str, Any] = {
    "regions": [
        {"name": "east", "role": "primary", "nats": {"managed": {}}},
        {"name": "west", "role": "standby", "nats": {"managed": {}}},
    ]
}


async def _reconcile(deps: Any, spec: dict[str, Any] = MANAGED) -> None:
    await reconcile(deps, REF, spec_raw=spec, generation=1, raw_status={})


def _named(kube: FakeKube, kind: str) -> set[str]:
    return {name for k, _, name in kube.objects if k == kind}


async def test_managed_regions_get_their_statefulsets_services_and_credentials() -> None:
    kube = FakeKube()
    await _reconcile(make_deps(kube, FakeJetStream()))
    assert _named(kube, "StatefulSet") == {"support-nats-east", "support-nats-west"}
    assert {"support-nats-east", "support-nats-east-headless"} <= _named(kube, "Service")
    assert {"support-nats-worker", "support-nats-gateway", "support-nats-operator"} <= _named(
        kube, "Secret"
    )


async def test_passwords_are_generated_once_and_kept_on_every_later_pass() -> None:
    kube = FakeKube()
    deps = make_deps(kube, FakeJetStream())
    await _reconcile(deps)
    first = kube.objects[("Secret", REF.namespace, "support-nats-worker")]["stringData"]
    config = kube.objects[("Secret", REF.namespace, "support-nats-east-config")]["stringData"]
    await _reconcile(deps)
    assert kube.objects[("Secret", REF.namespace, "support-nats-worker")]["stringData"] == first
    assert kube.objects[("Secret", REF.namespace, "support-nats-east-config")]["stringData"] == (
        config
    )
    assert len(first["password"]) >= 32
    assert first["password"] in config["nats.conf"]


async def test_external_regions_apply_no_nats_objects() -> None:
    kube = FakeKube()
    spec = {"regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://n:4222"}}]}
    await _reconcile(make_deps(kube, FakeJetStream()), spec)
    assert _named(kube, "StatefulSet") == set()


TLS: dict[str, Any] = {
    "regions": [{"name": "east", "role": "primary", "nats": {"tls": True, "managed": {}}}]
}


async def test_tls_regions_get_certificates_from_the_operators_ca_issued_once() -> None:
    kube = FakeKube()
    deps = make_deps(kube, FakeJetStream())
    await _reconcile(deps, TLS)
    secrets = _named(kube, "Secret")
    assert {"support-nats-ca", "support-nats-east-tls-client", "support-nats-east-tls-route"} <= (
        secrets
    )
    client = kube.objects[("Secret", REF.namespace, "support-nats-east-tls-client")]
    assert set(client["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    ca = kube.objects[("Secret", REF.namespace, "support-nats-ca")]["stringData"]["tls.crt"]
    assert client["stringData"]["ca.crt"] == ca
    await _reconcile(deps, TLS)
    again = kube.objects[("Secret", REF.namespace, "support-nats-east-tls-client")]
    assert again["stringData"] == client["stringData"]


async def test_named_certificate_secrets_are_used_not_issued() -> None:
    kube = FakeKube()
    spec = {
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {
                    "tls": True,
                    "managed": {"tls": {"clientSecret": "mine", "routeSecret": "mine-too"}},
                },
            }
        ]
    }
    kube.secrets["mine"] = {"tls.crt": b"c", "tls.key": b"k", "ca.crt": b"CA"}  # cert-manager's
    await _reconcile(make_deps(kube, FakeJetStream()), spec)
    assert not {n for n in _named(kube, "Secret") if "tls" in n or n.endswith("-ca")}


async def test_the_operator_connects_with_the_ca_when_tls_is_on() -> None:
    from surge_operator.api import parse_spec
    from surge_operator.handlers.reconcile import region_auth

    kube = FakeKube()
    deps = make_deps(kube, FakeJetStream())
    await _reconcile(deps, TLS)
    region = parse_spec(TLS).regions[0]
    auth = await region_auth(deps, REF.namespace, REF.name, region)
    assert auth.user == "operator"
    assert auth.ca_pem is not None
    assert "BEGIN CERTIFICATE" in auth.ca_pem
    assert "tls" in auth.connect_options()
