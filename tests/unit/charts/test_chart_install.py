"""What the chart installs beyond the operator: upgradable CRDs, multi-namespace RBAC,
aggregated roles, data-plane defaults the operator accepts, and a `helm test`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from surge_operator import crdgen
from surge_operator.settings import DataPlaneSettings
from tests.unit.charts.test_chart import CHART, helm_binary, render

pytestmark = pytest.mark.slow


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_the_crd_is_a_template_kept_on_uninstall() -> None:
    [crd] = by_kind(render(), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["spec"] == crdgen.build_crd()["spec"]
    [unkept] = by_kind(render("crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in unkept["metadata"]
    assert not by_kind(render("crds.install=false"), "CustomResourceDefinition")


def test_multi_namespace_mode_grants_the_operator_rules_in_every_watched_namespace() -> None:
    objects = render("operator.clusterWide=false", "operator.namespaces={team-a,team-b}")
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding")}
    assert {"team-a", "team-b"} <= roles.keys()
    assert {"team-a", "team-b"} <= bindings.keys()
    assert roles["team-a"]["rules"] == roles["team-b"]["rules"]
    assert any("messagingclusters" in r["resources"] for r in roles["team-a"]["rules"])
    for ns in ("team-a", "team-b"):
        subject = bindings[ns]["subjects"][0]
        assert (subject["name"], subject["namespace"]) == ("surge", "surge-system")
    [deployment] = by_kind(objects, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SURGE_NAMESPACES"] == "team-a,team-b"


def test_aggregated_roles_give_view_read_and_edit_write() -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(render(), "ClusterRole")}
    view, edit = roles["surge-view"], roles["surge-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    assert {v for r in view["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    assert not any("messagingclusters/status" in r["resources"] for r in edit["rules"])
    off = by_kind(render("rbac.aggregateToDefaultRoles=false"), "ClusterRole")
    assert not [r for r in off if "aggregate" in str(r["metadata"].get("labels"))]


def test_data_plane_defaults_reach_the_operator_in_a_form_it_accepts() -> None:
    objects = render(
        "imagePullSecrets[0].name=regcred",
        "image.pullPolicy=Always",
        "dataPlane.podTemplate.nodeSelector.pool=messaging",
        "dataPlane.networkPolicy.enabled=false",
    )
    [deployment] = by_kind(objects, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    settings = DataPlaneSettings.parse(
        env["SURGE_POD_TEMPLATE"], env["SURGE_IMAGE_PULL_POLICY"], env["SURGE_NETWORK_POLICY"]
    )
    assert settings.pod_template is not None
    assert settings.pod_template.node_selector == {"pool": "messaging"}
    assert [s.name for s in settings.pod_template.image_pull_secrets or []] == ["regcred"]
    assert settings.image_pull_policy == "Always"
    assert settings.network_policy is False
    assert json.loads(env["SURGE_POD_TEMPLATE"])["imagePullSecrets"] == [{"name": "regcred"}]


def test_the_default_install_passes_no_data_plane_template() -> None:
    [deployment] = by_kind(render(), "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SURGE_POD_TEMPLATE"] == ""
    assert DataPlaneSettings.parse(env["SURGE_POD_TEMPLATE"], "", "true") == DataPlaneSettings()


def test_helm_refuses_values_the_schema_forbids() -> None:
    args = [
        str(helm_binary()),
        "template",
        "surge",
        str(CHART),
        "--set",
        "image.pullPolicy=Sometimes",
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "pullPolicy" in result.stderr


def test_helm_test_hooks_check_the_install() -> None:
    hooks = [
        o
        for o in render()
        if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    [pod] = by_kind(hooks, "Pod")
    container = pod["spec"]["containers"][0]
    assert container["command"][:2] == ["surge", "check-install"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"ServiceAccount", "Role", "RoleBinding"} <= {o["kind"] for o in hooks}


VALUES = [None, *sorted((CHART / "ci").glob("*-values.yaml"))]


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.stem if v else "defaults")
def test_helm_lint_strict(values: Path | None) -> None:
    args = [str(helm_binary()), "lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_readme_is_generated_from_the_current_values() -> None:
    helm_docs = helm_binary().parent / "helm-docs"
    if not helm_docs.exists():
        pytest.fail(f"helm-docs missing at {helm_docs}: run tools/build-chart-tools.sh")
    result = subprocess.run(
        [str(helm_docs), "--chart-search-root", str(CHART.parent), "--sort-values-order",
         "file", "--dry-run"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    committed = (CHART / "README.md").read_text()
    assert result.stdout.strip() == committed.strip(), "chart README stale: run make chart-docs"
    assert "| dataPlane.podTemplate | object |" in committed
