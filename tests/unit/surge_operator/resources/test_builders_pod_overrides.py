"""Pod template overrides: the chart default and the MessagingCluster's own template reach
worker and gateway pods, merged field by field, without undoing Surge's own settings."""

from __future__ import annotations

from typing import Any

import pytest
from builder_support import MINIMAL, make_ctx
from pydantic import ValidationError

from surge_operator.api import parse_spec
from surge_operator.api_pods import PodTemplate
from surge_operator.resources import desired_objects, obsolete_objects
from surge_operator.resources.deployment import build_worker_deployment
from surge_operator.resources.gateway import build_gateway_deployment
from surge_operator.resources.overrides import merge_templates
from surge_operator.settings import DataPlaneSettings, OperatorConfig

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "support"}, "annotations": {"cost-center": "42"}},
    "nodeSelector": {"pool": "messaging"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "msg"}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}],
    "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}},
    "volumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
    "volumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    "imagePullSecrets": [{"name": "regcred"}],
    "priorityClassName": "messaging-high",
}
WITH_GATEWAY: dict[str, Any] = {
    **MINIMAL,
    "gateway": {"tokensSecret": {"name": "tokens", "key": "tokens"}},
}


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def test_a_worker_template_reaches_every_field_of_the_worker_pod() -> None:
    ctx = make_ctx({**MINIMAL, "workers": {"template": TEMPLATE}})
    pod = pod_of(build_worker_deployment(ctx))
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["team"] == "support"
    assert pod["metadata"]["annotations"]["cost-center"] == "42"
    assert spec["nodeSelector"] == {"pool": "messaging"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "msg"}]
    [spread] = spec["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert spec["priorityClassName"] == "messaging-high"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in spec["volumes"]
    assert container["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}}
    assert {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    # Surge's own settings stay: credentials env, /tmp, hardening, region preference.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "nodeAffinity" in spec["affinity"]


def test_the_worker_template_leaves_the_gateway_alone() -> None:
    ctx = make_ctx({**WITH_GATEWAY, "workers": {"template": TEMPLATE}})
    pod = pod_of(build_gateway_deployment(ctx))
    assert "nodeSelector" not in pod["spec"]
    assert "team" not in pod["metadata"]["labels"]


def test_a_template_cannot_move_pods_out_of_their_deployment_selector() -> None:
    hijack = {"metadata": {"labels": {"app.kubernetes.io/component": "gateway"}}}
    deployment = build_worker_deployment(make_ctx({**MINIMAL, "workers": {"template": hijack}}))
    labels = pod_of(deployment)["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "worker"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_spec_wins_over_the_chart_default_field_by_field() -> None:
    default = PodTemplate.model_validate(
        {
            "nodeSelector": {"pool": "general", "arch": "amd64"},
            "imagePullSecrets": [{"name": "regcred"}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "priorityClassName": "default-low",
        }
    )
    own = {"nodeSelector": {"pool": "messaging"}, "tolerations": [{"operator": "Exists"}]}
    ctx = make_ctx({**MINIMAL, "workers": {"template": own}}, pod_defaults=default)
    spec = pod_of(build_worker_deployment(ctx))["spec"]
    assert spec["nodeSelector"] == {"pool": "messaging", "arch": "amd64"}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["tolerations"] == [{"key": "a", "operator": "Exists"}, {"operator": "Exists"}]
    assert spec["priorityClassName"] == "default-low"


def test_a_given_node_affinity_replaces_the_region_preference() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["m"]}]}
                ]
            }
        }
    }
    ctx = make_ctx({**MINIMAL, "workers": {"template": {"affinity": affinity}}})
    assert pod_of(build_worker_deployment(ctx))["spec"]["affinity"] == affinity


def test_the_image_pull_policy_reaches_every_data_plane_container() -> None:
    ctx = make_ctx(WITH_GATEWAY, image_pull_policy="Never")
    for deployment in (build_worker_deployment(ctx), build_gateway_deployment(ctx)):
        assert pod_of(deployment)["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_no_template_no_change() -> None:
    assert merge_templates(None, None) == {}
    plain = pod_of(build_worker_deployment(make_ctx()))
    assert "imagePullSecrets" not in plain["spec"]
    assert "imagePullPolicy" not in plain["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ({"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
         "secretKeyRef"),
        ({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}, "hostPath"),
        ({"volumes": [{"name": "tmp", "emptyDir": {}}]}, "reserved"),
        ({"volumes": [{"name": "v"}]}, "exactly one of"),
        ({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "nope"),
        ({"securityContext": {"privileged": True}}, "securityContext"),
        ({"tolerations": [{"effect": "Sometimes"}]}, "effect"),
    ],
)  # fmt: skip
def test_unsafe_or_broken_templates_are_refused_naming_the_field(
    template: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec({**MINIMAL, "workers": {"template": template}})
    assert words in str(info.value)


def test_the_network_policy_switch_removes_the_policy() -> None:
    off = make_ctx({**MINIMAL, "networkPolicy": {"enabled": False}})
    assert "NetworkPolicy" not in [o["kind"] for o in desired_objects(off)]
    assert "NetworkPolicy/support-surge" in [str(r) for r in obsolete_objects(off)]
    operator_off = make_ctx(MINIMAL, network_policy=False)
    assert "NetworkPolicy" not in [o["kind"] for o in desired_objects(operator_off)]
    on = make_ctx(MINIMAL)
    assert "NetworkPolicy" in [o["kind"] for o in desired_objects(on)]
    assert not obsolete_objects(on) or all(r.kind != "NetworkPolicy" for r in obsolete_objects(on))


def test_extra_egress_rules_are_added_after_dns_and_nats() -> None:
    rule = {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 443}]}
    ctx = make_ctx({**MINIMAL, "networkPolicy": {"extraEgress": [rule]}})
    policy = next(o for o in desired_objects(ctx) if o["kind"] == "NetworkPolicy")
    egress = policy["spec"]["egress"]
    assert egress[-1] == {
        "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    assert len(egress) == 4  # DNS port, DNS pods, NATS, the extra rule


def test_operator_settings_read_the_chart_defaults_and_refuse_bad_ones() -> None:
    config = OperatorConfig.from_env(
        {
            "SURGE_POD_TEMPLATE": '{"imagePullSecrets": [{"name": "regcred"}]}',
            "SURGE_IMAGE_PULL_POLICY": "Always",
            "SURGE_NETWORK_POLICY": "false",
        }
    )
    assert config.data_plane.pod_template is not None
    assert config.data_plane.pod_template.image_pull_secrets is not None
    assert config.data_plane.image_pull_policy == "Always"
    assert config.data_plane.network_policy is False
    assert OperatorConfig.from_env({}).data_plane == DataPlaneSettings()
    with pytest.raises(ValueError, match=r"SURGE_POD_TEMPLATE\.nodeSelektor: Extra inputs"):
        OperatorConfig.from_env({"SURGE_POD_TEMPLATE": '{"nodeSelektor": {}}'})
    with pytest.raises(ValueError, match="SURGE_IMAGE_PULL_POLICY"):
        OperatorConfig.from_env({"SURGE_IMAGE_PULL_POLICY": "Sometimes"})


TWO_REGIONS: dict[str, Any] = {
    "regions": [
        {"name": "east", "role": "primary", "nats": {"url": "nats://nats.east:4222"}},
        {"name": "west", "role": "standby", "nats": {"url": "nats://nats.west:4222"}},
    ]
}


def test_a_drained_region_is_required_away_even_under_a_template_affinity() -> None:
    own = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "pool", "operator": "In", "values": ["m"]}]}]}}}}  # fmt: skip
    ctx = make_ctx({**TWO_REGIONS, "drainedRegions": ["east"], "workers": {"template": own}})
    terms = pod_of(build_worker_deployment(ctx))["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "pool", "operator": "In", "values": ["m"]},
                {"key": "topology.kubernetes.io/region", "operator": "NotIn", "values": ["east"]},
            ]
        }
    ]


@pytest.mark.parametrize(
    ("drained", "words"),
    [(["north"], "unknown regions"), (["east", "west"], "every region")],
)
def test_drained_regions_must_exist_and_leave_one(drained: list[str], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        parse_spec({**TWO_REGIONS, "drainedRegions": drained})
