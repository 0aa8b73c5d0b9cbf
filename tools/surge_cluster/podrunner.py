"""Pod runner: run the pods that kwok nodes "host" as real local processes, like a kubelet.

It watches all pods. For each pod bound to a kwok node and selected by
``surge_cluster.localpods.wants_local_run`` it starts every container's command + args as a
local process (own process group, env resolved from the pod incl. Secret/ConfigMap refs and
Secret/ConfigMap/emptyDir volumes written to the pod's directory (paths rewritten), the
venv's bin dir first on PATH, a unique loopback pod IP such as 127.1.0.2, and KUBECONFIG
pointing at a bound token of the pod's ServiceAccount in place of the in-cluster mount),
restarts it per restartPolicy with back-off, runs readiness probes, patches the pod status
(phase, Ready, containerStatuses with containerID ``surge-local://<pid>``), and when the pod is
deleted sends SIGTERM, waits the grace period, SIGKILLs, then removes the pod (grace 0) as a
kubelet would.

Run it with ``python -m surge_cluster.podrunner --kubeconfig K --dir D`` (``surge-cluster up``
does that). Logs of pod processes go to D/pods/<namespace>_<pod>/<container>.log; D/pids.json
lists the processes, D/targets.json is a Prometheus file_sd list of their metrics ports.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from surge_cluster import podstate, procs
from surge_cluster.kubeconfig import write_kubeconfig
from surge_cluster.localpods import wants_local_run
from surge_cluster.podenv import EnvError, PodAddresses, container_argv, container_env
from surge_cluster.podstatus import (
    ContainerFacts,
    Terminated,
    carry_transition_times,
    pod_status,
    status_key,
)
from surge_cluster.podvolumes import materialize, rewrite
from surge_cluster.probes import run_probe
from surge_cluster.topology import KWOK_ANNOTATION

log = logging.getLogger("surge_cluster.podrunner")

HOST_IP = "127.0.0.1"
MAX_BACKOFF = 10.0
MAX_GRACE = 30.0
SHUTDOWN_GRACE = 10.0
METRICS_PORT_NAMES = ("metrics", "http-metrics", "prometheus")
PASSTHROUGH_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")

Obj = dict[str, Any]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def base_env() -> dict[str, str]:
    """What every pod process gets before the pod's own env: the venv first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")])
    env["VIRTUAL_ENV"] = str(Path(venv_bin).parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class KubeLookup:
    """Secret and ConfigMap data for env resolution (read fresh at each container start)."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core

    def _read(self, kind: str, namespace: str, name: str) -> Obj | None:
        reader = getattr(self.core, f"read_namespaced_{kind}")
        try:
            data: Obj = _json(reader(name, namespace, _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return data

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        obj = self._read("secret", namespace, name)
        if obj is None:
            return None
        values = {
            k: base64.b64decode(v).decode(errors="surrogateescape")
            for k, v in (obj.get("data") or {}).items()
        }
        values.update(obj.get("stringData") or {})
        return values

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        obj = self._read("config_map", namespace, name)
        return None if obj is None else dict(obj.get("data") or {})


@dataclass
class ContainerRun:
    spec: Obj
    proc: subprocess.Popen[bytes] | None = None
    record: procs.ProcessRecord | None = None
    env: dict[str, str] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    restart_count: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_terminated: Terminated | None = None
    terminated: Terminated | None = None
    ready: bool = False
    probe_due: float = 0.0
    probe_successes: int = 0
    probe_failures: int = 0

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def facts(self) -> ContainerFacts:
        return ContainerFacts(
            name=self.name,
            image=str(self.spec.get("image") or ""),
            pid=self.record.pid if self.proc is not None and self.record else None,
            started_at=self.started_at,
            ready=self.ready,
            restart_count=self.restart_count,
            waiting_reason=self.waiting_reason,
            waiting_message=self.waiting_message,
            last_terminated=self.last_terminated,
            terminated=self.terminated,
        )


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    pod: Obj
    pod_ip: str
    start_time: dt.datetime
    containers: list[ContainerRun]
    deleting: bool = False
    gone: bool = False
    stop_deadline: float = 0.0
    last_status: Obj | None = None
    last_key: tuple[Any, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def processes(self) -> Iterator[ContainerRun]:
        return (c for c in self.containers if c.proc is not None)


class PodRunner:
    def __init__(self, api: client.ApiClient, directory: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.lookup = KubeLookup(self.core)
        self.directory = directory
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.runs: dict[str, PodRun] = {}
        self.kwok_nodes: dict[str, bool] = {}
        self.next_ip = 2
        self.base_env = base_env()
        self.stopping = threading.Event()
        self._published: tuple[Any, ...] = ()

    # ---------------------------------------------------------------- watch
    def _watch_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                listing = _json(self.core.list_pod_for_all_namespaces(_preload_content=False))
                self.events.put(("SYNC", listing.get("items") or []))
                self._watch_from(str(listing["metadata"]["resourceVersion"]))
            except Exception as err:  # keep watching through API restarts and network errors
                if not self.stopping.is_set():
                    log.warning("watch failed: %s; relisting", err)
                    time.sleep(1.0)

    def _watch_from(self, resource_version: str) -> None:
        while not self.stopping.is_set():
            resp = self.core.list_pod_for_all_namespaces(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=60,
                _preload_content=False,
            )
            for line in _lines(resp):
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return  # e.g. 410 Gone: relist
                resource_version = str(obj.get("metadata", {}).get("resourceVersion", ""))
                if event.get("type") != "BOOKMARK":
                    self.events.put((str(event["type"]), obj))

    # ---------------------------------------------------------------- events
    def _is_kwok_node(self, name: str) -> bool:
        if name not in self.kwok_nodes:
            try:
                node = _json(self.core.read_node(name, _preload_content=False))
            except ApiException:
                return False
            annotations = node.get("metadata", {}).get("annotations") or {}
            self.kwok_nodes[name] = KWOK_ANNOTATION in annotations
        return self.kwok_nodes[name]

    def sync(self, pods: list[Obj]) -> None:
        """A fresh listing: pods we run that are no longer there were deleted meanwhile."""
        seen = {p["metadata"]["uid"] for p in pods}
        for run in self.runs.values():
            if run.uid not in seen:
                self._begin_stop(run, gone=True)
        for pod in pods:
            self.handle("MODIFIED", pod)

    def handle(self, kind: str, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        run = self.runs.get(uid)
        if kind == "DELETED":
            if run:
                self._begin_stop(run, gone=True)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or not wants_local_run(pod) or not self._is_kwok_node(str(node)):
            return
        if run is None:
            if meta.get("deletionTimestamp"):
                self._delete_pod(str(meta["namespace"]), str(meta["name"]), uid)
                return
            run = self.runs[uid] = self._new_run(pod)
            log.info("pod %s on %s: running locally at %s", run.key, node, run.pod_ip)
        run.pod = pod
        if meta.get("deletionTimestamp") and not run.deleting:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            self._begin_stop(run, grace=float(grace))

    def _new_run(self, pod: Obj) -> PodRun:
        meta = pod["metadata"]
        status = pod.get("status") or {}
        pod_ip = str(status.get("podIP") or self._allocate_ip())
        return PodRun(
            uid=str(meta["uid"]),
            namespace=str(meta["namespace"]),
            name=str(meta["name"]),
            pod=pod,
            pod_ip=pod_ip,
            start_time=now(),
            containers=[ContainerRun(spec=c) for c in pod["spec"]["containers"]],
        )

    def _allocate_ip(self) -> str:
        used = {r.pod_ip for r in self.runs.values()}
        while True:
            n = self.next_ip
            self.next_ip += 1
            ip = f"127.1.{(n >> 8) & 255}.{n & 255}"
            if n & 255 not in (0, 255) and ip not in used:
                return ip

    # ---------------------------------------------------------------- processes
    def _pod_dir(self, run: PodRun) -> Path:
        return self.directory / "pods" / f"{run.namespace}_{run.name}"

    def _start(self, run: PodRun, c: ContainerRun) -> None:
        addresses = PodAddresses(pod_ip=run.pod_ip, host_ip=HOST_IP)
        try:
            base = dict(self.base_env)
            # A real pod binds 0.0.0.0 in its own network namespace; these processes share
            # the host's, so Surge's servers bind the pod's own loopback IP instead.
            base["SURGE_HTTP_HOST"] = base["SURGE_METRICS_HOST"] = run.pod_ip
            if kubeconfig := self._service_account_kubeconfig(run):
                base["KUBECONFIG"] = str(kubeconfig)
            env = container_env(run.pod, c.spec, self.lookup, addresses, base)
            argv = container_argv(c.spec, env)
            pod_dir = self._pod_dir(run)
            mounts = materialize(run.pod, c.spec, self.lookup, pod_dir / "volumes")
        except (EnvError, ApiException, OSError) as err:
            c.waiting_reason, c.waiting_message = "CreateContainerConfigError", str(err)
            c.next_start = time.monotonic() + 2.0
            return
        c.env = {k: v if k in base else rewrite(v, mounts) for k, v in env.items()}
        argv = [rewrite(a, mounts) for a in argv]
        workdir = Path(rewrite(str(c.spec.get("workingDir") or pod_dir), mounts))
        if not workdir.is_dir():
            workdir = pod_dir
        pod_dir.mkdir(parents=True, exist_ok=True)
        try:
            c.proc, c.record = procs.spawn(
                f"{run.key}/{c.name}", argv, pod_dir / f"{c.name}.log", env=c.env, cwd=workdir
            )
        except OSError as err:
            c.waiting_reason, c.waiting_message = "RunContainerError", str(err)
            c.next_start = time.monotonic() + self._bump_backoff(c)
            return
        c.started_at = now()
        c.waiting_reason = c.waiting_message = None
        c.ready = False
        c.probe_successes = c.probe_failures = 0
        probe = c.spec.get("readinessProbe") or {}
        c.probe_due = time.monotonic() + float(probe.get("initialDelaySeconds") or 0)
        log.info("pod %s container %s: started pid %d: %s", run.key, c.name, c.proc.pid, argv)

    def _service_account_kubeconfig(self, run: PodRun) -> Path | None:
        """The pod's in-cluster identity, as a kubeconfig: a bound token for its ServiceAccount
        (TokenRequest), so a local operator pod acts with exactly the RBAC it is granted."""
        spec = run.pod.get("spec") or {}
        if spec.get("automountServiceAccountToken") is False:
            return None
        path = self._pod_dir(run) / "kubeconfig"
        if path.exists():
            return path
        account = str(spec.get("serviceAccountName") or "default")
        request: Any = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 86400,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": run.name,
                    "uid": run.uid,
                },
            },
        }
        token = _json(
            self.core.create_namespaced_service_account_token(
                account, run.namespace, request, _preload_content=False
            )
        )["status"]["token"]
        conf = self.core.api_client.configuration
        user = f"system:serviceaccount:{run.namespace}:{account}"
        ca_pem = Path(conf.ssl_ca_cert).read_bytes() if conf.ssl_ca_cert else b""
        return write_kubeconfig(path, str(conf.host), ca_pem, str(token), user)

    @staticmethod
    def _bump_backoff(c: ContainerRun) -> float:
        delay = c.backoff
        c.backoff = min(c.backoff * 2, MAX_BACKOFF)
        return delay

    def _reap(self, run: PodRun, c: ContainerRun) -> None:
        if c.proc is None or c.proc.poll() is None:
            return
        code = c.proc.returncode
        finished = Terminated(
            exit_code=code if code >= 0 else 128 - code,
            started_at=c.started_at or now(),
            finished_at=now(),
        )
        log.info("pod %s container %s: exited with %d", run.key, c.name, code)
        c.proc = c.record = None
        c.started_at = None
        c.ready = False
        if run.deleting:
            c.terminated = finished
            return
        policy = str((run.pod.get("spec") or {}).get("restartPolicy") or "Always")
        if policy == "Always" or (policy == "OnFailure" and finished.exit_code != 0):
            c.last_terminated = finished
            c.restart_count += 1
            c.waiting_reason = "CrashLoopBackOff"
            c.next_start = time.monotonic() + self._bump_backoff(c)
        else:
            c.terminated = finished

    def _probe(self, run: PodRun, c: ContainerRun) -> None:
        if c.proc is None:
            return
        probe = c.spec.get("readinessProbe")
        if not probe:
            c.ready = True
            return
        if time.monotonic() < c.probe_due:
            return
        # Probed at least every second: tests should not wait for 10 s default periods.
        c.probe_due = time.monotonic() + min(float(probe.get("periodSeconds") or 10), 1.0)
        if run_probe(probe, c.spec, run.pod_ip, c.env):
            c.probe_successes, c.probe_failures = c.probe_successes + 1, 0
            if c.probe_successes >= int(probe.get("successThreshold") or 1):
                c.ready = True
        else:
            c.probe_failures, c.probe_successes = c.probe_failures + 1, 0
            if c.probe_failures >= int(probe.get("failureThreshold") or 3):
                c.ready = False

    def _begin_stop(self, run: PodRun, *, grace: float = 0.0, gone: bool = False) -> None:
        run.gone = run.gone or gone
        if run.deleting:
            return
        run.deleting = True
        run.stop_deadline = time.monotonic() + min(grace, MAX_GRACE)
        for c in run.processes():
            if c.record is not None:
                log.info("pod %s container %s: SIGTERM pid %d", run.key, c.name, c.record.pid)
                _signal(c.record.pid, signal.SIGTERM)

    def _finish_stop(self, run: PodRun) -> bool:
        """Advance a stopping pod; True once its processes are gone and the pod removed."""
        for c in run.containers:
            self._reap(run, c)
        alive = [c for c in run.processes() if c.record is not None]
        if alive and time.monotonic() < run.stop_deadline:
            return False
        for c in alive:
            assert c.record is not None
            log.info("pod %s container %s: SIGKILL pid %d", run.key, c.name, c.record.pid)
            _signal(c.record.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                if c.proc is not None:
                    c.proc.wait(timeout=5)
            self._reap(run, c)
        if not run.gone:
            self._delete_pod(run.namespace, run.name, run.uid)
        return True

    def _delete_pod(self, namespace: str, name: str, uid: str) -> None:
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
        )
        try:
            self.core.delete_namespaced_pod(name, namespace, body=body)
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("delete pod %s/%s failed: %s", namespace, name, err.reason)

    # ---------------------------------------------------------------- loop
    def tick(self) -> None:
        for uid, run in list(self.runs.items()):
            if run.deleting:
                if self._finish_stop(run):
                    del self.runs[uid]
                continue
            for c in run.containers:
                self._reap(run, c)
                if c.proc is None and c.terminated is None and time.monotonic() >= c.next_start:
                    self._start(run, c)
                self._probe(run, c)
            self._report(run)
        self._publish()

    def _report(self, run: PodRun) -> None:
        restart = str((run.pod.get("spec") or {}).get("restartPolicy") or "Always")
        status = pod_status(
            [c.facts() for c in run.containers],
            restart_policy=restart,
            pod_ip=run.pod_ip,
            host_ip=HOST_IP,
            start_time=run.start_time,
            now=now(),
        )
        key = status_key(status)
        if key == run.last_key:
            return
        status = carry_transition_times(run.last_status, status)
        try:
            self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status})
        except ApiException as err:
            if err.status == 404:
                return
            log.warning("status patch for %s failed: %s", run.key, err.reason)
            return
        run.last_status, run.last_key = status, key

    def _publish(self) -> None:
        processes = [
            podstate.PodProcess(r.namespace, r.name, r.uid, c.name, r.pod_ip, c.record)
            for r in self.runs.values()
            for c in r.containers
            if c.record is not None and c.proc is not None
        ]
        targets = [t for r in self.runs.values() if not r.deleting for t in _targets(r)]
        marker = (tuple(p.record.pid for p in processes), json.dumps(targets, sort_keys=True))
        if marker == self._published:
            return
        podstate.save_processes(self.directory, processes)
        podstate.save_targets(self.directory, targets)
        self._published = marker

    def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        podstate.save_processes(self.directory, [])
        threading.Thread(target=self._watch_forever, name="pod-watch", daemon=True).start()
        while not self.stopping.is_set():
            deadline = time.monotonic() + 0.25
            while True:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    kind, obj = self.events.get(timeout=timeout)
                except queue.Empty:
                    break
                if kind == "SYNC":
                    self.sync(obj)
                else:
                    self.handle(kind, obj)
            self.tick()
        self.shutdown()

    def shutdown(self) -> None:
        """Stop every local pod process (the pods stay: the cluster is going away)."""
        for run in self.runs.values():
            run.gone = True
            self._begin_stop(run, grace=SHUTDOWN_GRACE)
        deadline = time.monotonic() + SHUTDOWN_GRACE + 6
        while self.runs and time.monotonic() < deadline:
            for uid, run in list(self.runs.items()):
                if self._finish_stop(run):
                    del self.runs[uid]
            time.sleep(0.05)
        podstate.save_processes(self.directory, [])


def _json(resp: Any) -> Any:
    """Body of a `_preload_content=False` response (raw JSON: no model round trip)."""
    return json.loads(resp.data)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _lines(resp: Any) -> Iterator[str]:
    """Split a streaming watch response into JSON lines."""
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line.decode()
    if pending.strip():
        yield pending.decode()


def _targets(run: PodRun) -> list[Obj]:
    annotations = (run.pod.get("metadata") or {}).get("annotations") or {}
    labels = {"namespace": run.namespace, "pod": run.name}
    out: list[Obj] = []
    for c in run.containers:
        ports = [
            int(p["containerPort"])
            for p in c.spec.get("ports") or []
            if p.get("name") in METRICS_PORT_NAMES
        ]
        for port in ports:
            target = {
                "targets": [f"{run.pod_ip}:{port}"],
                "labels": {**labels, "container": c.name},
            }
            out.append(target)
    annotated = annotations.get("prometheus.io/port")
    if annotated and not out:
        out.append({"targets": [f"{run.pod_ip}:{annotated}"], "labels": labels})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="surge-cluster-podrunner", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dir", required=True, type=Path, help="state and pod log directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=args.kubeconfig
    )
    runner = PodRunner(api, args.dir.resolve())

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping pod processes", signum)
        runner.stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
