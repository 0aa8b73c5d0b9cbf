"""ServiceAccount, Role/RoleBinding, PDBs, NetworkPolicy, JetStream config."""

from __future__ import annotations

from builder_support import MINIMAL, make_ctx

from surge_operator.resources.identity import build_role, build_role_binding, build_service_account
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.network_policy import build_network_policy
from surge_operator.resources.pdb import build_worker_pdb


def test_service_account_does_not_automount_a_token() -> None:
    sa = build_service_account(make_ctx())
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["name"] == "support-surge"


def test_role_grants_get_on_named_objects_only() -> None:
    spec = {
        "regions": [
            {
                "name": "east",
                "role": "primary",
                "nats": {"url": "nats://n:4222", "credentialsSecret": {"name": "c"}},
            }
        ],
        "gateway": {"tokensSecret": {"name": "t", "key": "tokens"}},
    }
    assert build_role(make_ctx(spec))["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["support-config"],
            "verbs": ["get"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["c", "t"],
            "verbs": ["get"],
        },
    ]


def test_role_binding_binds_the_service_account() -> None:
    rb = build_role_binding(make_ctx())
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "support-surge",
    }
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "support-surge", "namespace": "team-a"}
    ]


def test_pdb_lets_a_drain_take_one_worker_at_a_time() -> None:
    assert build_worker_pdb(make_ctx())["spec"]["maxUnavailable"] == 1


def test_network_policy_allows_dns_and_the_nats_ports_only() -> None:
    spec = {
        "regions": [
            {"name": "east", "role": "primary", "nats": {"url": "nats://a:4222,nats://b:4333"}},
            {"name": "west", "role": "standby", "nats": {"url": "tls://c"}},
        ]
    }
    np = build_network_policy(make_ctx(spec))
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # the data plane only: managed nats-servers serve their own ports (clients, routes, leafs)
    assert np["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["nats"]}
    ]
    assert np["spec"]["egress"] == [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        # the DNS pods themselves on any port: non-root CoreDNS listens behind port 53
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ]
        },
        {"ports": [{"protocol": "TCP", "port": 4222}, {"protocol": "TCP", "port": 4333}]},
    ]


def test_pipeline_config_follows_the_stream_spec() -> None:
    spec = make_ctx(
        {**MINIMAL, "stream": {"partitions": 8, "maxDeliver": 7, "ackWaitSeconds": 9}}
    ).spec
    config = pipeline_config("S", spec)
    assert (config.stream, config.subject_prefix, config.partitions) == ("S", "support", 8)
    assert {p.max_deliver for p in config.policies.values()} == {7}
    assert {p.ack_wait for p in config.policies.values()} == {9.0}
