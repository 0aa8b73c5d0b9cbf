"""The next safe step for one managed region, decided from what the servers report.

Inputs are plain values (what `observe` read from the system account and the API
server); the output is one `Step`. One step per tick, re-decided from fresh observations
every time, so a crash or restart of the operator never leaves a half-done plan:

1. Any stream without a leader, or with a replica that is not current, means `Wait`:
   nothing is disturbed until JetStream has caught up (the check that a plain
   StatefulSet RollingUpdate, which only waits for readiness, lacks: nats-io/k8s #614).
2. Fewer servers than a stream's replicas would lose that stream's quorum: `Refuse`,
   with a reason naming the stream, before anything is touched.
3. Scale out at once (new servers only add peers); scale in one server at a time, the
   highest ordinal first (its pod stops in lame-duck mode), then remove it from the
   JetStream meta group (`RemovePeer`) so its replicas are placed on the others; the next
   server goes only when every stream is current again.
4. Servers whose running configuration differs from the desired one are asked to
   `Reload` (nats-server applies most changes in place). Which configuration a server runs
   is what it reports, never a guess: the rendered configuration carries its own digest as
   a server tag, and /varz lists the tags of the configuration last loaded. Until the
   kubelet refreshes the mounted Secret a reload re-reads the old file and the server stays
   stale, so the reload is repeated on the next pass. A server that refuses the reload (a
   change it cannot apply live) is restarted like a template change.
5. Pods on an old StatefulSet revision (or refusing reload) are restarted one at a time
   (`RestartPod`: lame duck in preStop, then the pod is deleted), the JetStream meta
   leader last, and only when every server is ready and every stream current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerView:
    name: str  # = pod name (server_name comes from POD_NAME)
    server_id: str
    config_digest: str  # "sha256:<hex>" as /varz reports it (of the parsed configuration)
    #: the digest of the rendered configuration the server last loaded (its config tag);
    #: None when the server reports none (rendered before servers were tagged)
    config_hash: str | None = None


@dataclass(frozen=True)
class PodView:
    name: str
    revision: str
    ready: bool


@dataclass(frozen=True)
class StreamView:
    name: str
    replicas: int
    leader: str | None
    current: int  # replicas (leader included) that are current
    lag: int = 0

    @property
    def healthy(self) -> bool:
        return self.leader is not None and self.current >= self.replicas


@dataclass(frozen=True)
class RegionObservation:
    desired_servers: int
    statefulset_replicas: int
    update_revision: str
    pods: Sequence[PodView]
    servers: Sequence[ServerView]
    streams: Sequence[StreamView]
    meta_leader: str | None
    #: servers that answered a reload with an error (the change needs a restart)
    reload_refused: frozenset[str] = field(default_factory=frozenset)
    #: digest of the configuration the operator rendered last (the StatefulSet's
    #: annotation); None: not known yet, nothing to reload
    config_hash: str | None = None
    #: server names in the JetStream meta group (leader and followers, online or not)
    meta_peers: Sequence[str] = ()


@dataclass(frozen=True)
class Step:
    kind: str  # Idle | Wait | Refuse | ScaleTo | RemovePeer | Reload | RestartPod
    reason: str
    replicas: int | None = None
    targets: tuple[str, ...] = ()


def ordinal(pod: str) -> int:
    tail = pod.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def stale_servers(obs: RegionObservation) -> list[str]:
    """Servers that run another configuration than the rendered one."""
    if obs.config_hash is None:
        return []
    return sorted(s.name for s in obs.servers if s.config_hash != obs.config_hash)


def _unhealthy(obs: RegionObservation) -> str | None:
    for stream in obs.streams:
        if stream.leader is None:
            return f"stream {stream.name} has no leader"
        if stream.current < stream.replicas:
            return (
                f"stream {stream.name}: {stream.current} of {stream.replicas} replicas current"
                f" (lag {stream.lag})"
            )
    not_ready = sorted(p.name for p in obs.pods if not p.ready)
    if not_ready:
        return f"servers not ready: {', '.join(not_ready)}"
    if len(obs.pods) < obs.statefulset_replicas:
        return f"{len(obs.pods)} of {obs.statefulset_replicas} servers exist"
    return None


def next_step(obs: RegionObservation) -> Step:
    widest = max((s.replicas for s in obs.streams), default=1)
    if obs.desired_servers < widest:
        names = sorted(s.name for s in obs.streams if s.replicas > obs.desired_servers)
        return Step(
            "Refuse",
            f"{obs.desired_servers} servers cannot hold stream {', '.join(names)} "
            f"with {widest} replicas: lower spec.stream.replicas first",
        )
    if obs.desired_servers > obs.statefulset_replicas:
        return Step(
            "ScaleTo",
            f"adding servers: {obs.statefulset_replicas} -> {obs.desired_servers}",
            replicas=obs.desired_servers,
        )
    problem = _unhealthy(obs)
    if problem is not None:
        return Step("Wait", problem)
    gone = sorted(p for p in obs.meta_peers if ordinal(p) >= obs.statefulset_replicas)
    if gone:
        return Step(
            "RemovePeer",
            f"server {gone[0]} was scaled in: removing it from the JetStream meta group",
            targets=(gone[0],),
        )
    if obs.desired_servers < obs.statefulset_replicas:
        last = obs.statefulset_replicas - 1
        return Step(
            "ScaleTo",
            f"removing one server (ordinal {last}); JetStream moves its replicas",
            replicas=last,
        )
    stale = [name for name in stale_servers(obs) if name not in obs.reload_refused]
    if stale:
        return Step("Reload", "configuration changed: reloading in place", targets=tuple(stale))
    restart = [p for p in obs.pods if p.revision != obs.update_revision]
    restart += [
        p for p in obs.pods if p.name in obs.reload_refused and p.revision == obs.update_revision
    ]
    if restart:
        # The meta leader last (one leader election instead of one per restart).
        restart.sort(key=lambda p: (p.name == obs.meta_leader, -ordinal(p.name)))
        pod = restart[0]
        return Step(
            "RestartPod",
            f"restarting {pod.name} ({len(restart)} to go; every stream current)",
            targets=(pod.name,),
        )
    return Step("Idle", "all servers current")
