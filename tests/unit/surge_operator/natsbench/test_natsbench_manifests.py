"""What `surge bench nats` puts on a cluster: valid MessagingClusters, bench pods that the
managed servers' own NetworkPolicy admits, and no password anywhere in a manifest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from surge_operator.api import parse_spec
from surge_operator.natsbench.load import parse_result
from surge_operator.natsbench.manifests import (
    DURABLE,
    LAZY,
    TENANT,
    Shape,
    bench_pod,
    durable_ctx,
    load_args,
    messaging_cluster,
    tokens_secret,
)
from surge_operator.resources import BuildContext
from surge_operator.resources.gateway import build_gateway_service
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.names import CLIENT_PORT, region_url
from surge_operator.resources.nats.network_policy import build_nats_network_policy

NS = "bench-ns"


def _ctx(name: str, interval: str) -> BuildContext:
    spec = parse_spec(messaging_cluster(name, NS, interval)["spec"])
    return BuildContext(name=name, namespace=NS, uid="u", spec=spec)


def _admitted(policy: dict[str, Any], labels: dict[str, str], port: int) -> bool:
    """Does one ingress rule with a plain podSelector let a pod with `labels` reach `port`?"""
    for rule in policy["spec"]["ingress"]:
        if not any(p["port"] == port for p in rule.get("ports", [])):
            continue
        for peer in rule.get("from", []):
            if "namespaceSelector" in peer:
                continue  # other namespaces: not how the bench pod gets in
            wanted = peer["podSelector"].get("matchLabels", {})
            if wanted and all(labels.get(k) == v for k, v in wanted.items()):
                return True
    return False


@pytest.mark.parametrize(("name", "interval"), [(DURABLE, "always"), (LAZY, "2m")])
def test_both_clusters_are_valid_specs_with_three_managed_servers(name: str, interval: str) -> None:
    ctx = _ctx(name, interval)
    managed = ctx.spec.regions[0].nats.managed
    assert managed is not None
    assert (managed.servers, managed.sync_interval) == (3, interval)
    # R3: the managed default, derived by the operator, not a value the bench sets
    assert ctx.spec.stream.replicas is None
    assert pipeline_config(ctx.stream, ctx.spec).replicas == 3


def test_only_the_durable_cluster_runs_a_gateway_and_a_worker() -> None:
    durable, lazy = _ctx(DURABLE, "always").spec, _ctx(LAZY, "2m").spec
    assert durable.gateway.enabled
    assert not lazy.gateway.enabled
    assert durable.autoscaling.min_replicas == durable.autoscaling.max_replicas == 1
    assert lazy.autoscaling.min_replicas == 0
    assert durable.workers.handler == "surge_workers.handlers:noop"


@pytest.mark.parametrize(("name", "interval"), [(DURABLE, "always"), (LAZY, "2m")])
def test_the_bench_pod_is_admitted_to_its_clusters_client_port_only(
    name: str, interval: str
) -> None:
    ctx = _ctx(name, interval)
    region = ctx.spec.regions[0]
    labels = bench_pod("p", NS, name, "img")["metadata"]["labels"]
    assert _admitted(build_nats_network_policy(ctx, region), labels, CLIENT_PORT)
    other = _ctx(LAZY if name == DURABLE else DURABLE, "2m")
    assert not _admitted(build_nats_network_policy(other, other.spec.regions[0]), labels, 4222)


def test_the_bench_pod_reads_credentials_from_the_generated_secret_and_runs_locked_down() -> None:
    pod = bench_pod("p", NS, DURABLE, "img")
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    ctx = _ctx(DURABLE, "always")
    assert env["NATS_URL"]["value"] == region_url(DURABLE, NS, ctx.spec.regions[0])
    for key in ("NATS_USER", "NATS_PASSWORD"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == f"{DURABLE}-nats-operator"
        assert "value" not in env[key]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["activeDeadlineSeconds"] > 0


def test_the_token_is_in_a_secret_in_the_gateways_format_and_nowhere_else() -> None:
    secret = tokens_secret(NS, "tok-123")
    assert json.loads(secret["stringData"]["tokens"]) == {TENANT: ["tok-123"]}
    for manifest in (bench_pod("p", NS, DURABLE, "img"), messaging_cluster(DURABLE, NS, "always")):
        assert "tok-123" not in json.dumps(manifest)


def test_the_load_run_targets_the_gateways_service_and_the_durable_stream() -> None:
    args = load_args(NS, 5000, 256)
    flag = dict(zip(args[3::2], args[4::2], strict=True))
    ctx = durable_ctx(NS)
    service = build_gateway_service(ctx)
    assert service["spec"]["ports"][0]["port"] == 80  # http://name.ns.svc needs no port
    assert flag["--gateway"] == f"http://{service['metadata']['name']}.{NS}.svc"
    assert flag["--stream"] == pipeline_config(ctx.stream, ctx.spec).stream
    assert (flag["--messages"], flag["--size"], flag["--tenant"]) == ("5000", "256", TENANT)


def test_the_in_pod_result_is_read_from_its_last_result_line() -> None:
    out = 'noise\nRESULT {"msgs_per_s": 10.0}\nRESULT {"msgs_per_s": 1234.5}\n'
    assert parse_result(out) == 1234.5
    with pytest.raises(RuntimeError, match="no result"):
        parse_result("Traceback ...")


def test_the_shape_fixes_the_durable_clusters_gateways_and_workers() -> None:
    manifest = messaging_cluster(DURABLE, NS, "always", Shape(gateways=2, workers=3))
    spec = parse_spec(manifest["spec"])
    assert spec.gateway.replicas == 2
    assert spec.autoscaling.min_replicas == spec.autoscaling.max_replicas == 3
    lazy = parse_spec(messaging_cluster(LAZY, NS, "2m", Shape(gateways=2, workers=3))["spec"])
    assert not lazy.gateway.enabled
    assert lazy.autoscaling.min_replicas == 0
