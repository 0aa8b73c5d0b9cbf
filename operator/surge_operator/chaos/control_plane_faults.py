"""Faults of the control plane while the data plane carries traffic: the operator killed
(kill -9) while it scales the worker Deployment, the leading one of two replicas frozen
(SIGSTOP) past its Lease and woken again, and the kube-apiserver process stopped and
started again, or frozen and continued, while the operator runs.

The control plane is a local one with kwok nodes (tools/surge_cluster; started here unless
a `Target` is given, as the e2e tests do with their session's): the Deployment, its
ReplicaSet and pods are real API objects and pods are marked Running, but nothing runs in
them, so the backlog a flood (operator_host.Publisher) puts into a nats-server on loopback
only grows and the right decision is known: scale up to MAX and stay there. The operator
is a host process (operator_host.OperatorProcess); a thread records every value the
Deployment's replicas take, so a reset or a flap in between is seen, not only the end.

Meanwhile the failover scenarios' at-least-once client and idempotent worker
(scenarios.py) send ids through the same nats-server: a fault of the control plane must
lose nothing of the data plane. recovery_s is from the fault until the operator (the
successor, after a kill, a freeze or an exit) applies its next scaling decision. Broken
control-plane invariants (replicas lower than already reached, not reaching the decision,
an exit the documented leadership rules do not allow, a write by a deposed leader) are the
Result's violations.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nats

from surge_cluster.cluster import LocalCluster
from surge_cluster.testing import KubeCluster
from surge_operator.chaos.checker import Effect, check
from surge_operator.chaos.operator_host import (
    Clusters,
    OperatorProcess,
    Publisher,
    ReplicaLog,
    WaitTimeoutError,
    install_crd,
    log_events,
    manifest,
    wait_for,
)
from surge_operator.chaos.result import Result
from surge_operator.chaos.scenarios import (
    PIPELINE,
    at_least_once_client,
    idempotent_worker,
    settle,
)
from surge_workers import provision

MAX = 12
#: 100 msg/s against 10 msg/s per worker (and workers that never consume): the decision
#: climbs to MAX in steps of 2 a tick and never has a reason to come down.
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": MAX,
    "maxStep": 2,
    "serviceRateHint": 10,
    "scaleDownStabilizationSeconds": 600,
}
FLOOD_RATE = 100
#: The API-server scenario's lease; settings: SURGE_RENEW_DEADLINE and SURGE_RETRY_SECONDS
#: default to 2/3 and 2/15 of it.
LEASE = 30.0
RENEW_DEADLINE = LEASE * 2 / 3
RETRY = LEASE * 2 / 15
#: The shortest outage (stop to answering again) after which an exit is documented: the
#: last renewal may precede the stop by up to one retry period, and the first attempt
#: after the API server returns may come up to one retry period after it.
EARLIEST_EXIT = RENEW_DEADLINE - 2 * RETRY
#: The longest outage that may be ridden out: past the renew deadline after the last
#: renewal (at the latest at the stop) the leader gives up at its next attempt, a retry
#: period later at most.
LATEST_RIDE = RENEW_DEADLINE + RETRY
#: How long kube-apiserver stays stopped. Short (CI): 5 s, and its start-up adds 6-12 s
#: here, so the operator mostly rides it out but may take the documented exit; the long
#: form stays away past the renew deadline, so the exit and the replacement run.
SHORT_OUTAGE = 5.0
LONG_OUTAGE = RENEW_DEADLINE + 5.0
#: How long kube-apiserver stays frozen (SIGSTOP: its connections stay open and hang, and
#: it answers again the moment it continues). Short (CI) well below EARLIEST_EXIT: ridden
#: out; long past LATEST_RIDE: the exit is due.
SHORT_FREEZE = 5.0
LONG_FREEZE = LATEST_RIDE + 6.0
#: The leader-freeze scenario runs the operator's own (client-go's) timings: lease 15 s,
#: renew deadline 10 s, retry 2 s. The leader stays frozen at least FREEZE_LEADER s (past
#: the lease) and until its standby has taken over and applied a scaling of its own.
LEADER_LEASE = 15.0
FREEZE_LEADER = 25.0
#: How long the woken leader has to find itself deposed: its overdue renewal, kopf's
#: shutdown grace and the bounded release, with room for a loaded machine.
WOKEN_WITHIN = 60.0
#: What the operator logs when it writes (to the API server or NATS); a leader that was
#: deposed while frozen must log none of them after it wakes.
WRITE_EVENTS = (
    "scaled",
    "degradation_changed",
    "owned_objects_applied",
    "stream_provisioned",
    "managed_nats_applied",
    "nats_step",
    "restore_started",
    "finalized",
)
#: What a leader logs when it finds it no longer holds the Lease.
DEPOSED_EVENTS = ("leadership_lost", "leadership_expired")
#: Data-plane traffic during the fault (ids a second), and the most a run sends.
SHORT_RATE, LONG_RATE = 20.0, 100.0
MAX_TRAFFIC_S = 900
NAMESPACE = "surge-chaos"


class ControlPlaneMissingError(RuntimeError):
    """The local control plane these scenarios start cannot run here (binaries not built)."""


def control_plane_missing() -> str | None:
    """Why the scenarios cannot start their control plane, or None when they can."""
    from surge_cluster.versions import CONTROL_PLANE_BINARIES, bin_dir, missing_binaries

    missing = missing_binaries(bin_dir(), CONTROL_PLANE_BINARIES)
    if not missing:
        return None
    return (
        f"the control-plane scenarios start a local Kubernetes control plane and need "
        f"{', '.join(missing)} in {bin_dir()}: run `make k8s` (tools/build-k8s.sh) first"
    )


# ------------------------------------------------------------------ pure verdicts


def replica_violations(seen: Sequence[int], decision: int) -> list[str]:
    """Under a backlog that only grows, replicas never go down and end at the decision."""
    out = []
    if list(seen) != sorted(seen):
        out.append(f"replicas went down under a growing backlog: {list(seen)}")
    if not seen or seen[-1] != decision:
        out.append(f"replicas ended at {seen[-1] if seen else None}, not the decision {decision}")
    return out


def outage_violations(
    down_s: float,
    *,
    exited: bool,
    exit_code: int | None,
    said_why: bool,
    earliest_exit: float,
    latest_ride: float | None = None,
) -> list[str]:
    """Documented: a leader whose renewals fail stops acting at the renew deadline after its
    last successful renewal and exits with code 1 (saying so) to be restarted as a standby;
    an outage shorter than `earliest_exit` (see EARLIEST_EXIT) is ridden out, one longer
    than `latest_ride` (see LATEST_RIDE) is not."""
    if not exited:
        if latest_ride is not None and down_s > latest_ride:
            return [
                f"the operator rode out an outage of {down_s:.1f} s: past {latest_ride:.0f} s "
                f"its Lease cannot have been renewed within the renew deadline"
            ]
        return []
    out = []
    if down_s < earliest_exit:
        out.append(
            f"the operator exited after an outage of only {down_s:.1f} s "
            f"(no exit is documented below {earliest_exit:.0f} s)"
        )
    if exit_code != 1:
        out.append(f"the operator exited with code {exit_code}, not 1")
    if not said_why:
        out.append("the operator exited without logging exiting_after_leadership_loss")
    return out


def _write(doc: dict[str, object]) -> str:
    if doc["event"] == "scaled":
        return f"scaled {doc.get('replicas_from')}->{doc.get('replicas_to')}"
    return str(doc["event"])


def logged_after_thaw(after_thaw: str, at_takeover: object) -> tuple[list[str], str | None]:
    """The writes a frozen leader logged after its thaw, and which of them (if any) was
    only logged then: a scaling logs after its write returns, so a freeze between the two
    delays the line of a write that landed before. One tick writes at a time, so that can
    only be the first line, a scaling to the value the new leader found (`at_takeover`:
    its first scaling's replicas_from). Returns (writes made after the thaw, that one)."""
    docs = log_events(after_thaw, *WRITE_EVENTS)
    if docs and docs[0]["event"] == "scaled" and docs[0].get("replicas_to") == at_takeover:
        return [_write(d) for d in docs[1:]], _write(docs[0])
    return [_write(d) for d in docs], None


def woken_violations(
    after_thaw: Sequence[str], *, found_deposed: bool, exited: bool, exit_code: int | None
) -> list[str]:
    """A leader frozen past its Lease, woken after its standby took over, must write
    nothing (`after_thaw`: from logged_after_thaw) and find itself deposed: it
    exits with code 1 (run.py's rule) or stands by, and says why."""
    out = [f"the deposed leader wrote after it woke: {w}" for w in after_thaw]
    if not found_deposed:
        out.append(
            f"the woken leader never logged that it lost the Lease ({' or '.join(DEPOSED_EVENTS)})"
        )
    if exited and exit_code != 1:
        out.append(f"the deposed leader exited with code {exit_code}, not 1")
    return out


def recovery(fault_at: float | None, decided_at: float | None) -> float | None:
    if fault_at is None or decided_at is None:
        return None
    return decided_at - fault_at


# ------------------------------------------------------------------ the control plane


@dataclass(frozen=True)
class Target:
    """Where a fault runs: a local control plane (its processes can be stopped), a
    namespace with the CRD installed, the loopback nats-server the MessagingClusters and
    the traffic use, a directory for the operators' logs."""

    kube: KubeCluster
    namespace: str
    nats_url: str
    logs: Path


@contextmanager
def own_target() -> Iterator[Target]:
    """A fresh local control plane with kwok nodes and a nats-server, both gone after."""
    from kubernetes import client

    from surge_cluster.testing import local_cluster
    from surge_workers.natsserver import NatsServer

    why = control_plane_missing()
    if why is not None:
        raise ControlPlaneMissingError(why)
    with (
        tempfile.TemporaryDirectory(prefix="surge-chaos-cp-") as tmp,
        local_cluster(Path(tmp) / "kube", fake_nodes=True) as kube,
        NatsServer(Path(tmp) / "nats") as server,
    ):
        core = client.CoreV1Api(kube.api_client)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        install_crd(kube)
        yield Target(kube, NAMESPACE, server.url, Path(tmp))


@dataclass
class FaultReport:
    """What the fault's thread saw (monotonic times)."""

    fault_at: float | None = None
    decided_at: float | None = None
    replicas: list[int] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def _since(report: FaultReport) -> float:
    return round(time.monotonic() - (report.fault_at or time.monotonic()), 2)


def _converged(clusters: Clusters, name: str) -> bool:
    """The Deployment holds what the operator decided, and that is MAX."""
    deployment = clusters.deployment(f"{name}-worker")
    return (
        deployment is not None
        and deployment.spec.replicas == MAX
        and clusters.status(name).get("desiredReplicas") == MAX
    )


@contextmanager
def _flooded(
    clusters: Clusters, name: str, nats_url: str, report: FaultReport
) -> Iterator[ReplicaLog]:
    """A Ready MessagingCluster `name` under a steady flood, its worker replicas recorded
    (into the report when the block ends)."""
    clusters.create(manifest(name, nats_url, autoscaling=AUTOSCALING))
    wait_for(f"{name} Ready", lambda: clusters.is_true(name, "Ready"), timeout=180)
    replicas = ReplicaLog(clusters, f"{name}-worker").start()
    publisher = Publisher(nats_url, name.replace("-", "_"), rate=FLOOD_RATE).start()
    try:
        yield replicas
    finally:
        publisher.stop()
        replicas.stop()
        report.replicas = replicas.seen()


def kill_mid_scale(target: Target, report: FaultReport) -> None:
    """kill -9 of the leading operator half-way up; its successor (started at once, as the
    Deployment would) must carry the scale-up on to MAX without a lower value."""
    clusters = Clusters(target.kube, target.namespace)
    operators: list[OperatorProcess] = []

    def start() -> OperatorProcess:
        operators.append(OperatorProcess(target.kube, target.namespace, target.logs).start())
        return operators[-1]

    try:
        first = start()
        with _flooded(clusters, "scaly", target.nats_url, report) as replicas:
            wait_for(
                "the scale-up under way",
                lambda: (r := replicas.current()) is not None and 3 <= r <= MAX - 3,
                timeout=120,
                every=0.05,
            )
            first.kill()
            report.fault_at = time.monotonic()
            report.notes["killed_at_replicas"] = replicas.current()
            successor = start()
            wait_for("the successor's leadership", lambda: successor.events("leader_elected"), 120)
            report.notes["successor_led_s"] = _since(report)
            wait_for("the successor's first scaling", lambda: successor.events("scaled"), 120)
            report.decided_at = time.monotonic()
            wait_for(
                f"{MAX} replicas, decided and applied",
                lambda: _converged(clusters, "scaly"),
                timeout=180,
            )
            report.notes["converged_s"] = _since(report)
    except WaitTimeoutError as exc:
        report.violations.append(str(exc))
    finally:
        for op in operators:
            op.stop()
    report.violations += replica_violations(report.replicas, MAX)


ApiServerFault = Callable[[LocalCluster], AbstractContextManager[None]]


@contextmanager
def apiserver_stopped(local: LocalCluster) -> Iterator[None]:
    """kube-apiserver stopped (connections refused) for the block, then started again."""
    record = local.stop_process("kube-apiserver")
    try:
        yield
    finally:
        local.start_process(record)


@contextmanager
def apiserver_frozen(local: LocalCluster) -> Iterator[None]:
    """kube-apiserver frozen by SIGSTOP for the block (its connections stay open and every
    request hangs), then SIGCONT: it answers again at once, no start-up."""
    local.signal_process("kube-apiserver", signal.SIGSTOP)
    try:
        yield
    finally:
        local.signal_process("kube-apiserver", signal.SIGCONT)


def api_outage(
    target: Target, report: FaultReport, *, outage: float, fault: ApiServerFault
) -> None:
    """Take kube-apiserver away (`fault`: stopped or frozen) for `outage` s mid scale-up.
    Well below the renew deadline the operator rides it out; past it the operator exits
    with code 1 and its replacement (started here, as the Deployment would) takes over.
    Either way changes are reconciled again (a new MessagingCluster becomes Ready) and
    scaling resumes (no reset)."""
    local = target.kube.cluster
    if local is None:
        raise ControlPlaneMissingError("the API-server faults need the local control plane")
    clusters = Clusters(target.kube, target.namespace)
    operators: list[OperatorProcess] = []

    def start() -> OperatorProcess:
        operators.append(
            OperatorProcess(
                target.kube, target.namespace, target.logs, SURGE_LEASE_SECONDS=str(LEASE)
            ).start()
        )
        return operators[-1]

    report.notes["stopped_s"] = outage
    report.notes["renew_deadline_s"] = RENEW_DEADLINE
    report.notes["earliest_exit_s"] = EARLIEST_EXIT
    try:
        op = start()
        wait_for("leadership", lambda: op.events("leader_elected"), timeout=120)
        with _flooded(clusters, "api-1", target.nats_url, report) as replicas:
            wait_for("a first scale-up", lambda: (replicas.current() or 0) > 1, timeout=120)
            decisions = len(op.events("scaled"))
            with fault(local):
                report.fault_at = time.monotonic()
                time.sleep(outage)  # the fault itself: the API server stays away this long
            wait_for("the API server answering", clusters.api_answers, timeout=120)
            down = time.monotonic() - report.fault_at
            report.notes["outage_s"] = round(down, 2)  # away + its start-up, if any
            if op.events(*DEPOSED_EVENTS):
                # It gave up the Lease: let its exit (kopf's grace, a bounded release) run.
                wait_for("the deposed operator's exit", lambda: not op.alive(), WOKEN_WITHIN)
            exited = not op.alive()
            code = op.proc.returncode if exited and op.proc is not None else None
            report.notes["operator"] = "exited, replaced" if exited else "rode it out"
            report.notes["operator_exit_code"] = code
            report.violations += outage_violations(
                down, exited=exited, exit_code=code, earliest_exit=EARLIEST_EXIT,
                latest_ride=LATEST_RIDE,
                said_why=bool(op.events("exiting_after_leadership_loss")),
            )  # fmt: skip
            if exited:
                op, decisions = start(), 0  # what the Deployment does
            wait_for(
                "the operator's next scaling",
                lambda: len(op.events("scaled")) > decisions,
                timeout=180,
            )
            report.decided_at = time.monotonic()
            clusters.create(manifest("api-2", target.nats_url))
            wait_for("api-2 Ready", lambda: clusters.is_true("api-2", "Ready"), timeout=180)
            report.notes["new_cluster_ready_s"] = _since(report)
            wait_for(f"api-1 at {MAX} replicas", lambda: _converged(clusters, "api-1"), 180)
            report.notes["converged_s"] = _since(report)
            if not op.alive():
                report.violations.append("the operator exited after the API server was back")
    except WaitTimeoutError as exc:
        report.violations.append(str(exc))
    finally:
        for proc in operators:
            proc.stop()
    report.violations += replica_violations(report.replicas, MAX)


def freeze_leader(target: Target, report: FaultReport) -> None:
    """Two replicas share the Lease (client-go's timings). The leader is frozen (SIGSTOP)
    half-way up, past the lease duration and until its standby has taken over and scaled;
    then it continues (SIGCONT). The new leader must carry the scale-up on to MAX without a
    lower value; the woken one must find itself deposed and write nothing (its log after
    the thaw), whatever its stale view of the Deployment says."""
    clusters = Clusters(target.kube, target.namespace)
    operators: list[OperatorProcess] = []

    def start(identity: str) -> OperatorProcess:
        env = {"SURGE_LEASE_SECONDS": str(LEADER_LEASE), "SURGE_IDENTITY": identity}
        operators.append(OperatorProcess(target.kube, target.namespace, target.logs, **env).start())
        return operators[-1]

    try:
        leader = start("replica-a")
        wait_for("replica-a's leadership", lambda: leader.events("leader_elected"), 120)
        standby = start("replica-b")
        wait_for("replica-b standing by", lambda: standby.events("standby"), 120)
        report.notes["led_before"] = _holder(leader)
        with _flooded(clusters, "frozen", target.nats_url, report) as replicas:
            wait_for(
                "the scale-up under way",
                lambda: (r := replicas.current()) is not None and 3 <= r <= MAX - 3,
                timeout=120,
                every=0.05,
            )
            at_takeover: object = None  # the replicas the new leader found
            leader.send(signal.SIGSTOP)
            report.fault_at = time.monotonic()
            report.notes["frozen_at_replicas"] = replicas.current()
            try:
                wait_for("replica-b's leadership", lambda: standby.events("leader_elected"), 90)
                report.notes["standby_led_s"] = _since(report)
                first = wait_for("replica-b's first scaling", lambda: standby.events("scaled"), 120)
                at_takeover = first[0].get("replicas_from")  # an int in the JSON log
                report.decided_at = time.monotonic()
                time.sleep(max(0.0, report.fault_at + FREEZE_LEADER - time.monotonic()))
            finally:
                thawed_from = len(leader.log())  # frozen: it wrote nothing since the stop
                leader.send(signal.SIGCONT)
            report.notes["frozen_s"] = _since(report)
            report.notes["led_after"] = _holder(standby)
            found_deposed = _happens(
                lambda: leader.events(*DEPOSED_EVENTS, since=thawed_from), WOKEN_WITHIN
            )
            exited = _happens(lambda: not leader.alive(), WOKEN_WITHIN)
            code = leader.proc.returncode if exited and leader.proc is not None else None
            report.notes["woken_leader"] = (
                f"exited with code {code}" if exited else "kept running as a standby"
            )
            report.notes["woken_log"] = [
                str(doc["event"])
                for doc in log_events(
                    leader.log()[thawed_from:],
                    *DEPOSED_EVENTS, *WRITE_EVENTS, "autoscaling_paused_not_leader",
                    "exiting_after_leadership_loss", "standby",
                )
            ]  # fmt: skip
            wrote, landed_before = logged_after_thaw(leader.log()[thawed_from:], at_takeover)
            if landed_before is not None:
                report.notes["logged_late"] = landed_before
            report.violations += woken_violations(
                wrote,
                found_deposed=found_deposed,
                exited=exited,
                exit_code=code,
            )
            wait_for(
                f"{MAX} replicas, decided and applied",
                lambda: _converged(clusters, "frozen"),
                timeout=180,
            )
            report.notes["converged_s"] = _since(report)
            if not standby.alive():
                report.violations.append("the new leader exited")
    except WaitTimeoutError as exc:
        report.violations.append(str(exc))
    finally:
        # Who was still there at the end (a run that times out says why: e.g. the new
        # leader gone too, with nobody to restart it).
        report.notes["operators_at_end"] = {
            op.env.get("SURGE_IDENTITY", "?"): "running" if op.alive() else _exit_of(op)
            for op in operators
        }
        try:  # with the Deployment's, what a converged wait that timed out was missing
            report.notes["status_desired_at_end"] = clusters.status("frozen").get("desiredReplicas")
        except Exception as exc:  # a note only: the API server may be slow
            report.notes["status_desired_at_end"] = repr(exc)
        for op in operators:
            op.stop()
    report.violations += replica_violations(report.replicas, MAX)


def _happens(check: Callable[[], object], within: float) -> bool:
    """Whether `check` comes true within `within` s (not happening is an outcome here)."""
    try:
        wait_for("an outcome", check, within)
    except WaitTimeoutError:
        return False
    return True


def _exit_of(op: OperatorProcess) -> str:
    code = op.proc.returncode if op.proc is not None else None
    why = [str(e["event"]) for e in op.events(*DEPOSED_EVENTS)]
    return f"exited with code {code}" + (f" after {', '.join(why)}" if why else "")


def _holder(op: OperatorProcess) -> str:
    elected = op.events("leader_elected")
    return str(elected[-1].get("identity")) if elected else "?"


# ------------------------------------------------------------------ traffic + verdict


@dataclass
class _Flow:
    """The client's and worker's record against the one nats-server (scenarios.Flow)."""

    server: str
    accepted: set[str] = field(default_factory=set)
    effects: list[Effect] = field(default_factory=list)
    absorbed: int = 0
    fault_at: float | None = None
    recovered_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0

    def url(self) -> str:
        return self.server


Fault = Callable[[Target, FaultReport], None]


async def under_traffic(name: str, short: bool, target: Target, fault: Fault) -> Result:
    """Run the (blocking) fault on a thread while ids flow through the nats-server; then
    let the worker catch up and check id by id."""
    nc = await nats.connect(target.nats_url)
    try:
        await provision.provision_pipeline(nc.jetstream(timeout=5.0), PIPELINE)
    finally:
        await nc.close()
    flow = _Flow(target.nats_url)
    fault_over = asyncio.Event()
    rate = SHORT_RATE if short else LONG_RATE

    async def count(i: int) -> None:
        flow.sent = i + 1

    worker = asyncio.create_task(idempotent_worker(flow))
    client = asyncio.create_task(
        at_least_once_client(flow, int(rate * MAX_TRAFFIC_S), rate, count, until=fault_over)
    )
    report = FaultReport()
    try:
        await asyncio.to_thread(fault, target, report)
        fault_over.set()
        await client
        await settle(flow, within=30.0)
    finally:
        fault_over.set()
        flow.stop.set()
        for task in (client, worker):
            task.cancel()
        await asyncio.gather(client, worker, return_exceptions=True)
    extra: dict[str, object] = {"sent": flow.sent, "replicas_seen": report.replicas}
    extra.update(report.notes)
    return Result(
        name,
        check(flow.accepted, flow.effects, flow.absorbed),
        recovery(report.fault_at, report.decided_at),
        None,
        extra,
        violations=tuple(report.violations),
    )


async def _on(name: str, short: bool, target: Target | None, fault: Fault) -> Result:
    if target is not None:
        return await under_traffic(name, short, target, fault)
    with own_target() as own:
        return await under_traffic(name, short, own, fault)


async def operator_kill_mid_scale(short: bool, target: Target | None = None) -> Result:
    return await _on("operator-kill-9-mid-scale", short, target, kill_mid_scale)


async def operator_sigstop_leader(short: bool, target: Target | None = None) -> Result:
    return await _on("operator-sigstop-leader", short, target, freeze_leader)


async def apiserver_restart(
    short: bool, target: Target | None = None, outage: float | None = None
) -> Result:
    if outage is None:
        outage = SHORT_OUTAGE if short else LONG_OUTAGE
    fault = partial(api_outage, outage=outage, fault=apiserver_stopped)
    return await _on("apiserver-restart", short, target, fault)


async def apiserver_sigstop(
    short: bool, target: Target | None = None, frozen: float | None = None
) -> Result:
    if frozen is None:
        frozen = SHORT_FREEZE if short else LONG_FREEZE
    fault = partial(api_outage, outage=frozen, fault=apiserver_frozen)
    return await _on("apiserver-sigstop", short, target, fault)
