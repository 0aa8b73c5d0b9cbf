"""Pure builders of a managed region: each object as a dict comparison."""

from __future__ import annotations

from typing import Any

from nats_support import PASSWORDS, managed_ctx

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext
from surge_operator.resources.nats.conf import Raw
from surge_operator.resources.nats.config import (
    config_digest,
    server_config,
    server_config_text,
)
from surge_operator.resources.nats.objects import desired_nats_objects
from surge_operator.resources.nats.pdb import build_nats_pdb
from surge_operator.resources.nats.services import build_client_service, build_headless_service
from surge_operator.resources.nats.statefulset import build_statefulset

SELECTOR = {
    "app.kubernetes.io/name": "surge",
    "app.kubernetes.io/instance": "support",
    "app.kubernetes.io/component": "nats",
    "surge.dev/nats-region": "east",
}


def east(ctx: Any) -> Any:
    return ctx.spec.regions[0]


def test_objects_per_region_in_creation_order_after_the_shared_credentials() -> None:
    ctx = managed_ctx()
    kinds = [(o["kind"], o["metadata"]["name"]) for o in desired_nats_objects(ctx, PASSWORDS)]
    roles = ("operator", "gateway", "worker", "client", "backup", "leaf", "route", "system")
    assert kinds[:8] == [("Secret", f"support-nats-{r}") for r in roles]
    assert kinds[8:14] == [
        ("Secret", "support-nats-east-config"),
        ("Service", "support-nats-east-headless"),
        ("Service", "support-nats-east"),
        ("StatefulSet", "support-nats-east"),
        ("PodDisruptionBudget", "support-nats-east"),
        ("NetworkPolicy", "support-nats-east"),
    ]
    assert [n for _, n in kinds[14:]] == [n.replace("east", "west") for _, n in kinds[8:14]]


def test_external_regions_own_no_nats_objects() -> None:
    spec = parse_spec({"regions": [{"name": "e", "role": "primary", "nats": {"url": "nats://n"}}]})
    ctx = BuildContext(name="support", namespace="team-a", uid="u", spec=spec)
    assert desired_nats_objects(ctx, PASSWORDS) == []


def test_statefulset_three_servers_parallel_on_delete_with_volumes() -> None:
    ctx = managed_ctx(storage={"storageClassName": "fast", "size": "20Gi"})
    sts = build_statefulset(ctx, east(ctx))
    spec = sts["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "serviceName": "support-nats-east-headless",
        "replicas": 3,
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "OnDelete"},
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"},
        "selector": {"matchLabels": SELECTOR},
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "20Gi"}},
                    "storageClassName": "fast",
                },
            }
        ],
    }
    assert sts["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_servers_spread_across_zones_and_hosts() -> None:
    ctx = managed_ctx()
    pod = build_statefulset(ctx, east(ctx))["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def test_nats_container_is_hardened_probed_and_lame_ducks_on_stop() -> None:
    ctx = managed_ctx()
    pod = build_statefulset(ctx, east(ctx))["spec"]["template"]["spec"]
    nats = pod["containers"][0]
    assert nats["command"] == ["nats-server", "--config", "/etc/nats/nats.conf"]
    assert nats["securityContext"]["readOnlyRootFilesystem"] is True
    assert nats["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["automountServiceAccountToken"] is False
    assert nats["lifecycle"]["preStop"]["exec"]["command"] == [
        "nats-server",
        "--signal",
        "ldm=/var/run/nats/nats.pid",
    ]
    probes = {k: nats[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "monitor"},
        "livenessProbe": {"path": "/healthz?js-enabled-only=true", "port": "monitor"},
        "readinessProbe": {"path": "/healthz?js-server-only=true", "port": "monitor"},
    }
    assert pod["terminationGracePeriodSeconds"] > 30  # lame duck fits in the grace period
    assert {v["name"] for v in pod["volumes"]} == {"config", "run"}


def test_exporter_sidecar_and_scrape_annotations_unless_metrics_are_off() -> None:
    ctx = managed_ctx()
    template = build_statefulset(ctx, east(ctx))["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["nats", "exporter"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "7777"
    off = managed_ctx(metrics=False)
    template = build_statefulset(off, east(off))["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["nats"]
    assert template["metadata"]["annotations"] == {}


def test_tls_mounts_the_client_and_route_secrets() -> None:
    ctx = managed_ctx(require_tls=True, tls={"clientSecret": "east-client-cert"})
    pod = build_statefulset(ctx, east(ctx))["spec"]["template"]["spec"]
    secrets = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}
    assert secrets["tls-client"] == "east-client-cert"
    assert secrets["tls-route"] == "support-nats-east-tls-route"  # the operator's CA issues it


def test_headless_service_publishes_not_ready_servers_for_routes() -> None:
    ctx = managed_ctx()
    svc = build_headless_service(ctx, east(ctx))
    assert svc["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": SELECTOR,
        "ports": [
            {"name": "client", "port": 4222, "targetPort": "client", "protocol": "TCP"},
            {"name": "cluster", "port": 6222, "targetPort": "cluster", "protocol": "TCP"},
            {"name": "monitor", "port": 8222, "targetPort": "monitor", "protocol": "TCP"},
        ],
    }


def test_client_service_exposes_clients_leafnodes_and_metrics() -> None:
    ctx = managed_ctx()
    svc = build_client_service(ctx, east(ctx))
    assert svc["metadata"]["name"] == "support-nats-east"
    assert [p["port"] for p in svc["spec"]["ports"]] == [4222, 7422, 7777]


def test_pdb_allows_one_server_down() -> None:
    ctx = managed_ctx()
    assert build_nats_pdb(ctx, east(ctx))["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": SELECTOR},
    }


def test_config_routes_every_ordinal_and_fsyncs_always_in_the_region_domain() -> None:
    ctx = managed_ctx()
    config = server_config(ctx, east(ctx), PASSWORDS)
    assert config["jetstream"] == {
        "store_dir": "/data/jetstream",
        "domain": "east",
        "sync_interval": Raw("always"),
    }
    assert config["cluster"]["routes"] == [
        f"nats://route:pw-route@support-nats-east-{i}.support-nats-east-headless.team-a.svc:6222"
        for i in range(3)
    ]
    assert config["http"] == "0.0.0.0:8222"
    assert config["system_account"] == "SYS"
    assert "sync_interval: always\n" in server_config_text(ctx, east(ctx), PASSWORDS)


def test_config_is_tagged_with_the_digest_the_statefulset_carries() -> None:
    ctx = managed_ctx()
    digest = config_digest(ctx, east(ctx), PASSWORDS)
    assert server_config(ctx, east(ctx), PASSWORDS)["server_tags"] == [f"surge.dev/config:{digest}"]
    [sts] = [
        o
        for o in desired_nats_objects(ctx, PASSWORDS)
        if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "support-nats-east"
    ]
    assert sts["metadata"]["annotations"]["surge.dev/nats-config-hash"] == digest
    relaxed = managed_ctx(syncInterval="2m")
    assert config_digest(relaxed, east(relaxed), PASSWORDS) != digest


def test_sync_interval_can_be_relaxed() -> None:
    ctx = managed_ctx(syncInterval="2m")
    assert server_config(ctx, east(ctx), PASSWORDS)["jetstream"]["sync_interval"] == "2m"


def test_single_server_has_no_cluster_block() -> None:
    ctx = managed_ctx(servers=1)
    assert "cluster" not in server_config(ctx, east(ctx), PASSWORDS)


def test_first_region_is_the_leafnode_hub_and_the_others_connect_to_it() -> None:
    ctx = managed_ctx()
    hub = server_config(ctx, ctx.spec.regions[0], PASSWORDS)["leafnodes"]
    spoke = server_config(ctx, ctx.spec.regions[1], PASSWORDS)["leafnodes"]
    assert "remotes" not in hub
    assert spoke["remotes"] == [
        {
            "urls": ["nats-leaf://leaf:pw-leaf@support-nats-east.team-a.svc:7422"],
            "account": "SURGE",
        }
    ]
    assert server_config(ctx, ctx.spec.regions[1], PASSWORDS)["jetstream"]["domain"] == "west"


def test_users_one_per_role_with_restricted_gateway_worker_client_and_backup() -> None:
    ctx = managed_ctx()
    users = server_config(ctx, east(ctx), PASSWORDS)["accounts"]["SURGE"]["users"]
    assert [u["user"] for u in users] == ["operator", "gateway", "worker", "client", "backup"]
    assert "permissions" not in users[0]
    assert all("permissions" in u for u in users[1:])


def test_tls_blocks_for_clients_routes_and_leafnodes() -> None:
    ctx = managed_ctx(require_tls=True)
    config = server_config(ctx, ctx.spec.regions[1], PASSWORDS)
    assert config["tls"]["cert_file"] == "/etc/nats/tls/client/tls.crt"
    assert config["cluster"]["tls"]["verify"] is True
    assert config["leafnodes"]["remotes"][0]["tls"]["ca_file"] == "/etc/nats/tls/route/ca.crt"


def test_pods_get_their_own_role_and_the_managed_url() -> None:
    from surge_operator.resources.config_map import config_data
    from surge_operator.resources.pods import env

    ctx = managed_ctx()
    assert config_data(ctx)["SURGE_NATS_URL"] == "nats://support-nats-east.team-a.svc:4222"
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in env(ctx, "worker")
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {
        "SURGE_NATS_USER": {"name": "support-nats-worker", "key": "user"},
        "SURGE_NATS_PASSWORD": {"name": "support-nats-worker", "key": "password"},
    }
    gateway = [e for e in env(ctx, "gateway") if e["name"] == "SURGE_NATS_PASSWORD"]
    assert gateway[0]["valueFrom"]["secretKeyRef"]["name"] == "support-nats-gateway"


def test_tls_regions_are_dialled_with_tls_scheme() -> None:
    from surge_operator.resources.config_map import config_data

    assert config_data(managed_ctx(require_tls=True))["SURGE_NATS_URL"].startswith("tls://")


def test_the_worker_user_may_subscribe_to_its_election_advisories() -> None:
    from surge_operator.resources.nats.accounts import worker_permissions
    from surge_workers.failures import election_advisories

    allowed = worker_permissions("ORDERS", "support").to_config()["subscribe"]["allow"]
    assert set(election_advisories("ORDERS")) <= set(allowed)
    assert not any("OTHER" in s for s in allowed)
