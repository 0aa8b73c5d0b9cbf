"""Every template the chart renders, for every values file in charts/surge/ci/ and the
defaults, is valid for the cluster's own Kubernetes version: kubeconform (built from its
Go module) checks it strictly against schemas made from this API server's OpenAPI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from surge_cluster.testing import KubeCluster
from surge_cluster.versions import bin_dir
from tests.e2e.kubeconform_schemas import kind_file_name, write_schemas
from tests.e2e.operator_support import ROOT, install_crd

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHART = ROOT / "charts" / "surge"
VALUES = [None, *sorted((CHART / "ci").glob("*-values.yaml"))]
#: Prometheus Operator kinds: their CRDs are not part of this cluster, so there is no
#: schema to check them against (their fields are covered by test_chart_monitoring).
NO_SCHEMA = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def kubeconform() -> Path:
    path = bin_dir() / "kubeconform"
    if not os.access(path, os.X_OK):
        reason = f"kubeconform missing at {path}: run tools/build-chart-tools.sh (make k8s)"
        if os.environ.get("SURGE_REQUIRE_E2E"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def schema_dir(node_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    install_crd(node_cluster)  # so the MessagingCluster schema is in /openapi/v2 too
    openapi = json.loads(node_cluster.kubectl("get", "--raw", "/openapi/v2").stdout)
    out = tmp_path_factory.mktemp("kubeconform-schemas")
    written = write_schemas(openapi, out)
    assert kind_file_name("apps", "v1", "Deployment") in written
    return out


def cluster_version(node_cluster: KubeCluster) -> str:
    version = json.loads(node_cluster.kubectl("version", "-o", "json").stdout)
    return str(version["serverVersion"]["gitVersion"]).lstrip("v").split("+")[0]


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.stem if v else "defaults")
def test_every_rendered_template_is_valid_at_the_clusters_version(
    values: Path | None, node_cluster: KubeCluster, schema_dir: Path, tmp_path: Path
) -> None:
    version = cluster_version(node_cluster)
    args = ["template", "surge", str(CHART), "--namespace", "surge-system",
            "--kube-version", version, "--include-crds"]  # fmt: skip
    if values is not None:
        args += ["--values", str(values)]
    rendered = node_cluster.helm(*args).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert docs, "the chart rendered nothing"
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered)
    result = subprocess.run(
        [
            str(kubeconform()), "-strict", "-summary", "-output", "text",
            "-kubernetes-version", version,
            "-schema-location", str(schema_dir) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-skip", ",".join(NO_SCHEMA),
            str(manifest),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    checked = {d["kind"] for d in docs} - set(NO_SCHEMA)
    assert "Deployment" in checked
    assert f"Valid: {sum(d['kind'] not in NO_SCHEMA for d in docs)}" in result.stdout


def test_kubeconform_catches_a_misspelt_field(
    node_cluster: KubeCluster, schema_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "x"},
                "spec": {"replica": 1, "selector": {}, "template": {}},
            }
        )
    )
    result = subprocess.run(
        [str(kubeconform()), "-strict", "-schema-location",
         str(schema_dir) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "replica" in result.stdout + result.stderr
