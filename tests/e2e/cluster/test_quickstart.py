"""The README's quickstart, word for word, on a real cluster.

The commands are read from README.md between `<!-- quickstart:begin -->` and
`<!-- quickstart:end -->` (then the clean-up block), so the README stays the only copy:
a command that stops working there fails here. They run in one bash (`set -euo pipefail`,
traced with a timestamp per command) with kubectl, helm and surge on the PATH and the
cluster's KUBECONFIG, from a directory that holds the clone's `charts/` and `examples/`.
Only the image loading that the README leaves to the reader's cluster happens outside the
block, as `make e2e-load` does it (kind loads it before the tests).

Managed NATS runs on a PersistentVolume of the cluster's default StorageClass; a message
sent through the gateway comes back in its transcript once a worker has stored it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import (
    IMAGE,
    RELEASE,
    RELEASE_NS,
    ROOT,
    archives,
    describe,
    kube_json,
    node_images,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

NS = "support"
BLOCK_TIMEOUT = 1200.0
"""The quickstart's own waits are bounded (helm --wait 5 min, kubectl wait 600 s, curl 30
retries, a 60 s load); this bounds the block as a whole."""


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(
        rf"<!-- {name}:begin -->\n```sh\n(.*?)```\n<!-- {name}:end -->", text, re.DOTALL
    )
    assert found, f"README.md has no ```sh block between the {name}:begin/end markers"
    return found.group(1)


@dataclass(frozen=True)
class Traced:
    returncode: int
    stdout: str
    stderr: str
    wall: float
    commands: list[tuple[float, str]]
    """(start time, command as bash traced it), in order."""

    def duration(self, prefix: str) -> float:
        """Seconds from the first command starting with prefix to the next command."""
        for (at, text), nxt in zip(self.commands, [*self.commands[1:], None], strict=True):
            if text.startswith(prefix):
                return (nxt[0] if nxt else self.commands[0][0] + self.wall) - at
        raise AssertionError(f"no traced command starts with {prefix!r}")


TRACE = re.compile(r"^\++\[(\d+\.\d+)\] (.*)$")


class Shell:
    """Runs README blocks in bash; the background jobs they start (the port-forward) share
    the shell's session, which is killed at the end."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.sessions: list[int] = []

    def run(
        self, block: str, name: str, *, timeout: float = BLOCK_TIMEOUT, errexit: bool = True
    ) -> Traced:
        # Files, not pipes: a background job keeps a pipe open after bash has exited.
        out, err = self.cwd / f"{name}.out", self.cwd / f"{name}.err"
        script = "PS4='+[$EPOCHREALTIME] '\nset -x\n" + block
        started = time.monotonic()
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(
                ["bash", *(["-euo", "pipefail"] if errexit else []), "-c", script],
                cwd=self.cwd,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            self.sessions.append(proc.pid)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(proc.pid)
                code = proc.wait(timeout=30)
        wall = time.monotonic() - started
        stderr_text = err.read_text()
        commands = [
            (float(m.group(1)), m.group(2))
            for line in stderr_text.splitlines()
            if (m := TRACE.match(line)) and not m.group(2).startswith("set -x")
        ]
        return Traced(code, out.read_text(), stderr_text, wall, commands)

    @staticmethod
    def kill(session: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, signal.SIGTERM)

    def close(self) -> None:
        for session in self.sessions:
            self.kill(session)


@pytest.fixture
def shell(node_cluster: KubeCluster, tmp_path: Path) -> Iterator[Shell]:
    """A clone-like working directory and the PATH the README assumes (kubectl, helm,
    surge); the cluster starts without a release or a `support` namespace."""
    for part in ("charts", "examples"):
        (tmp_path / part).symlink_to(ROOT / part)
    env = node_cluster.env()
    env["PATH"] = os.pathsep.join([str(Path(sys.prefix) / "bin"), env["PATH"]])
    env.pop("PS4", None)
    if node_cluster.cluster is not None:  # the local cluster: `make e2e-load`'s step
        node_cluster.load_images(archives())
    wait_for(
        f"{IMAGE} on every node",
        lambda: all(IMAGE in names for names in node_images(node_cluster)),
        timeout=90,
    )
    # An earlier module (or `make e2e-install`) may have installed the e2e release.
    node_cluster.helm(
        "uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout=100s", check=False
    )
    node_cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=110s")
    sh = Shell(tmp_path, env)
    try:
        yield sh
    finally:
        sh.close()


def test_the_readme_quickstart_runs_word_for_word_then_cleans_up(
    node_cluster: KubeCluster, shell: Shell
) -> None:
    cleaned = False
    try:
        quick = shell.run(readme_block("quickstart"), "quickstart")
        if quick.returncode != 0:
            pytest.fail(
                f"quickstart failed ({quick.returncode}):\n{quick.stdout[-3000:]}\n"
                f"{quick.stderr[-6000:]}\n{describe(node_cluster, NS)}"
            )
        claims = kube_json(node_cluster, "get", "pvc", "-n", NS)["items"]
        pods = kube_json(node_cluster, "get", "pods", "-n", NS)["items"]
        restarts = {
            p["metadata"]["name"]: sum(
                c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or []
            )
            for p in pods
        }
        kills = sorted(
            {
                f"{e['involvedObject']['name']}: {e.get('message')}"
                for e in kube_json(node_cluster, "get", "events", "-n", NS)["items"]
                if e.get("reason") in ("Killing", "OOMKilling")
            }
        )
        why = sorted(
            f"{p['metadata']['name']}: {t.get('reason')} (exit {t.get('exitCode')})"
            for p in pods
            for c in p["status"].get("containerStatuses") or []
            if (t := (c.get("lastState") or {}).get("terminated"))
        )
        accepted = [
            int(m.group(1))
            for m in re.finditer(
                r"^\s+(?:critical|normal|bulk)\s+\d+\s+(\d+)\s", quick.stdout, re.MULTILINE
            )
        ]
        mc = kube_json(node_cluster, "get", "mc", "support", "-n", NS)
        to_ready = quick.duration("kubectl apply") + quick.duration(
            "kubectl --namespace support wait"
        )
        print(
            "\nquickstart figures (README quickstart on this cluster):"
            f"\n  helm install --wait -> operator Ready: {quick.duration('helm install'):.1f} s"
            f"\n  helm test: {quick.duration('helm test'):.1f} s"
            f"\n  kubectl apply -> mc Ready (managed NATS on a PV): {to_ready:.1f} s"
            f"\n  quickstart wall: {quick.wall:.1f} s"
            f"\n  container restarts after the surge: {sum(restarts.values())} "
            f"in {len(restarts)} pods {why}; kubelet kills: {kills}"
            f"\n{quick.stdout[-2500:]}"
        )

        cleanup = shell.run(readme_block("quickstart-cleanup"), "cleanup", timeout=900)
        cleaned = True
        assert cleanup.returncode == 0, cleanup.stderr[-4000:]
        print(f"  clean-up wall: {cleanup.wall:.1f} s")
    finally:
        if not cleaned:  # leave the shared cluster usable for the modules after this one
            shell.run(readme_block("quickstart-cleanup"), "rescue", timeout=900, errexit=False)

    # Managed NATS kept JetStream on a volume of the default class.
    assert claims
    assert all(c["spec"].get("storageClassName") == "standard" for c in claims) or (
        node_cluster.cluster is None  # kind: its own default class
    )
    assert all(c["status"].get("phase") == "Bound" for c in claims)
    # The message went through the gateway and a worker stored it in the transcript.
    assert '"id": "m-1"' in quick.stdout or '"id":"m-1"' in quick.stdout
    assert "my order never arrived" in quick.stdout
    assert sum(accepted) > 0, "surge load: nothing accepted by the gateway"
    assert mc["status"]["phase"]
    # Clean-up left nothing of Surge behind.
    assert node_cluster.helm("status", RELEASE, "--namespace", RELEASE_NS, check=False).returncode
    for args in (
        ("namespace", NS),
        ("namespace", RELEASE_NS),
        ("crd", "messagingclusters.surge.dev"),
    ):
        assert node_cluster.kubectl("get", *args, check=False).returncode != 0, args
