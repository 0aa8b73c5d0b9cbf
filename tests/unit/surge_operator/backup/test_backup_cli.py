from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from surge_operator.backup.kube_restore import with_restore_source
from surge_operator.cli import app
from surge_operator.errors import InvalidSpecError

runner = CliRunner()


NEW = {
    "apiVersion": "surge.dev/v1alpha1",
    "kind": "MessagingCluster",
    "metadata": {"name": "support-restored", "namespace": "team-a"},
    "spec": {
        "regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://n:4222"}}],
        "backup": {"schedule": "0 * * * *", "target": {"pvc": {"claimName": "backups"}}},
    },
}


def test_restore_needs_exactly_one_destination() -> None:
    assert runner.invoke(app, ["restore", "--from", "dir:/b/ns/mc/latest"]).exit_code == 2
    both = ["restore", "--from", "x", "--into", "f.yaml", "--nats-url", "nats://n:4222"]
    assert runner.invoke(app, both).exit_code == 2


def test_a_bad_output_format_is_a_usage_error() -> None:
    result = runner.invoke(
        app, ["backup", "list", "--cluster", "a/b", "--target", "dir:/x", "-o", "xml"]
    )
    assert result.exit_code == 2


def test_a_failed_backup_exits_1_with_the_reason(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["backup", "list", "--cluster", "a/b", "--target", "s3://bucket"],
        env={"SURGE_S3_ENDPOINT": ""},
    )
    assert result.exit_code == 1
    assert "SURGE_S3_ENDPOINT" in result.output


def test_the_new_cluster_takes_its_restore_source_and_its_backup_target() -> None:
    doc = with_restore_source(NEW, "team-a/support/latest")
    assert doc["spec"]["restoreFrom"] == {
        "target": {"pvc": {"claimName": "backups"}},
        "cluster": "team-a/support",
        "backup": "latest",
    }


def test_a_restore_source_must_name_a_cluster_and_a_backup() -> None:
    with pytest.raises(InvalidSpecError, match="namespace"):
        with_restore_source(NEW, "support")
    with pytest.raises(InvalidSpecError, match="backup"):
        with_restore_source(NEW, "team-a/support/yesterday")
    no_target = yaml.safe_load(yaml.safe_dump(NEW))
    del no_target["spec"]["backup"]
    with pytest.raises(InvalidSpecError, match="target"):
        with_restore_source(no_target, "team-a/support/latest")
