"""Run the operator's generated nats-server configuration on loopback.

`LocalNatsCluster` takes exactly what `resources.nats.config.server_config` produces for
a managed region (accounts, permissions, JetStream domain, sync interval, TLS blocks) and
starts `servers` real nats-server processes from it, rewriting only what a pod gets from
Kubernetes: listen addresses (free loopback ports instead of fixed ports on the pod IP),
route and leafnode URLs (loopback instead of Service DNS), store and pid paths, TLS file
paths and the server name. Tests (permissions, TLS, exact metrics, rolling restarts) and
`surge bench nats` use it, so what they exercise is the configuration users run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge_operator.resources.nats.conf import render
from surge_workers.natsserver import NatsServer, free_port


@dataclass(frozen=True)
class Ports:
    client: int
    cluster: int
    monitor: int
    leaf: int


def _rewrite_tls(block: dict[str, Any], tls_dir: Path | None) -> None:
    """`/etc/nats/tls/<kind>/<file>` -> `<tls_dir>/<kind>/<file>`."""
    if tls_dir is None:
        return
    for key in ("cert_file", "key_file", "ca_file"):
        if key in block:
            kind, name = block[key].split("/")[-2:]
            block[key] = str(tls_dir / kind / name)


class LocalNatsCluster:
    """`servers[i]` are NatsServer processes; `urls` the client URLs of all of them."""

    def __init__(
        self,
        config: Mapping[str, Any],
        servers: int,
        *,
        name: str = "local",
        root: Path | None = None,
        tls_dir: Path | None = None,
        hub_leaf_port: int | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="surge-natscluster-")) if root is None else root
        self.name = name
        self.ports = [
            Ports(free_port(), free_port(), free_port(), free_port()) for _ in range(servers)
        ]
        self.servers: list[NatsServer] = []
        self._overrides = dict(overrides or {})
        self._tls_dir = tls_dir
        self._hub = hub_leaf_port
        for i, ports in enumerate(self.ports):
            store = self.root / f"{name}-{i}"
            store.mkdir(parents=True, exist_ok=True)
            conf = store / "nats.conf"
            merged = {**dict(config), **dict(overrides or {})}
            conf.write_text(render(self._server_config(merged, i, store, tls_dir, hub_leaf_port)))
            self.servers.append(
                NatsServer(store_dir=store, port=ports.client, extra_args=("-c", str(conf)))
            )

    def config_path(self, i: int) -> Path:
        return self.servers[i].store_dir / "nats.conf"

    def rewrite_config(self, config: Mapping[str, Any], i: int) -> str:
        """Write a new configuration for server i (what a changed Secret does in a pod);
        returns the digest nats-server will report once it has loaded it."""
        merged = {**dict(config), **dict(self._overrides)}
        text = render(
            self._server_config(merged, i, self.servers[i].store_dir, self._tls_dir, self._hub)
        )
        self.config_path(i).write_text(text)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def server_name(self, i: int) -> str:
        return f"{self.name}-{i}"

    def _server_config(
        self,
        config: dict[str, Any],
        i: int,
        store: Path,
        tls_dir: Path | None,
        hub_leaf_port: int | None,
    ) -> dict[str, Any]:
        ports = self.ports[i]
        config["server_name"] = self.server_name(i)
        config["listen"] = f"127.0.0.1:{ports.client}"
        config["http"] = f"127.0.0.1:{ports.monitor}"
        config["pid_file"] = str(store / "nats.pid")
        # NatsServer passes the store directory on the command line (`-sd`); nats-server
        # refuses a second one in the file.
        config["jetstream"] = {k: v for k, v in config["jetstream"].items() if k != "store_dir"}
        if "tls" in config:
            config["tls"] = dict(config["tls"])
            _rewrite_tls(config["tls"], tls_dir)
        if "cluster" in config:
            cluster = dict(config["cluster"])
            user = cluster["authorization"]["user"]
            password = cluster["authorization"]["password"]
            cluster["listen"] = f"127.0.0.1:{ports.cluster}"
            cluster["routes"] = [
                f"nats://{user}:{password}@127.0.0.1:{p.cluster}" for p in self.ports
            ]
            if "tls" in cluster:
                cluster["tls"] = dict(cluster["tls"])
                _rewrite_tls(cluster["tls"], tls_dir)
            config["cluster"] = cluster
        if "leafnodes" in config:
            leaf = dict(config["leafnodes"])
            leaf["listen"] = f"127.0.0.1:{ports.leaf}"
            if "tls" in leaf:
                leaf["tls"] = dict(leaf["tls"])
                _rewrite_tls(leaf["tls"], tls_dir)
            remotes = []
            for remote in leaf.get("remotes", []):
                remote = dict(remote)
                creds, _, _host = remote["urls"][0].removeprefix("nats-leaf://").partition("@")
                port = hub_leaf_port if hub_leaf_port is not None else ports.leaf
                remote["urls"] = [f"nats-leaf://{creds}@127.0.0.1:{port}"]
                if "tls" in remote:
                    remote["tls"] = dict(remote["tls"])
                    _rewrite_tls(remote["tls"], tls_dir)
                remotes.append(remote)
            if remotes:
                leaf["remotes"] = remotes
            config["leafnodes"] = leaf
        return config

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def monitor_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i].monitor}"

    def start(self, timeout: float = 60.0) -> LocalNatsCluster:
        # A fresh JetStream cluster elects its meta leader after a 4-9 s election timeout,
        # and a split vote starts another round: on a loaded 2-core machine 30 s (three or
        # four rounds) was seen to run out in CI. A bound, not an expectation.
        for server in self.servers:
            server.start(timeout=20)
        self.wait_healthy(timeout)
        return self

    def health(self, i: int) -> str:
        """What /healthz of server i says: "ok" (JetStream enabled, meta leader known,
        current) or its error, or why it could not be asked."""
        try:
            with urllib.request.urlopen(f"{self.monitor_url(i)}/healthz", timeout=1) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            # 503 carries the reason in the same JSON shape.
            try:
                body = json.loads(err.read())
            except ValueError:
                return f"HTTP {err.code}"
        except (OSError, ValueError) as err:
            return f"unreachable ({err})"
        if body.get("status") == "ok":
            return "ok"
        return str(body.get("error") or body)

    def healthy(self, i: int) -> bool:
        return self.health(i) == "ok"

    def wait_healthy(self, timeout: float = 60.0, only: Iterable[int] | None = None) -> None:
        """Until every (running) server is healthy: a JetStream API request made before a
        meta leader exists gets no answer at all, so callers would wait out a timeout."""
        indexes = list(range(len(self.servers))) if only is None else list(only)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.healthy(i) for i in indexes):
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"nats cluster {self.name} not healthy within {timeout}s:\n" + self.diagnosis(indexes)
        )

    def diagnosis(self, indexes: Iterable[int], lines: int = 8) -> str:
        """Per server: its process state, /healthz answer and the end of its log, so a
        failure seen once in CI explains itself."""
        out = []
        for i in indexes:
            server = self.servers[i]
            process = server.process
            state = (
                "not started"
                if process is None
                else ("running" if process.poll() is None else f"exited {process.returncode}")
            )
            try:
                logged = server.log_path.read_text(errors="replace").splitlines()
                # Our own /healthz polling fills the log with failed checks; skip them.
                tail = [line for line in logged if "Healthcheck failed" not in line][-lines:]
            except OSError:
                tail = []
            out.append(f"{self.server_name(i)} [{state}] healthz: {self.health(i)}")
            out.extend(f"    {line}" for line in tail)
        return "\n".join(out)

    def cleanup(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.kill()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalNatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
