"""The kind workflow for users' CI cannot run here (no GitHub runner, no container engine):
actionlint, built from its Go module, checks it, and its steps must stay the steps of
`make e2e`, so running that target locally is running the workflow."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "e2e-kind.yaml"

pytestmark = pytest.mark.slow


def actionlint() -> str:
    path = subprocess.run(
        [str(ROOT / "tools" / "build-actionlint.sh"), "--print-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not os.access(path, os.X_OK):
        reason = f"actionlint missing at {path}: run make actionlint"
        if os.environ.get("SURGE_REQUIRE_E2E"):
            pytest.fail(f"SURGE_REQUIRE_E2E is set but {reason}")
        pytest.skip(reason)
    return path


def make_prerequisites(target: str) -> list[str]:
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(f"{target}:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no {target} target in the Makefile")


def workflow_steps() -> list[dict[str, str]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps: list[dict[str, str]] = doc["jobs"]["e2e"]["steps"]
    return steps


def test_actionlint_accepts_every_workflow() -> None:
    files = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in files
    done = subprocess.run(
        [actionlint(), "-no-color", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_really_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = WORKFLOW.read_text().replace("timeout-minutes: 45", "timeout-minutes: forty-five")
    broken.write_text(text)
    done = subprocess.run(
        [actionlint(), "-no-color", str(broken)], capture_output=True, check=False
    )
    assert done.returncode != 0


def test_workflow_runs_exactly_the_steps_of_make_e2e() -> None:
    runs = [s["run"].strip() for s in workflow_steps() if "run" in s]
    make_calls = [r for r in runs if r.startswith("make ")]
    # make e2e = e2e-load (after images) + e2e-install + e2e-test, in that order.
    e2e = make_prerequisites("e2e")
    assert e2e == ["e2e-load", "e2e-install", "e2e-test"]
    assert make_prerequisites("e2e-load")[0] == "images"
    assert make_calls == ["make images", *(f"make {t}" for t in e2e)]


def test_workflow_builds_the_cluster_from_kind_config() -> None:
    runs = " ".join(s.get("run", "") for s in workflow_steps())
    assert re.search(r"kind create cluster .*--config kind-config\.yaml", runs.replace("\\\n", " "))
    env = yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]["env"]
    assert env["KIND_CLUSTER"] == yaml.safe_load((ROOT / "kind-config.yaml").read_text())["name"]
