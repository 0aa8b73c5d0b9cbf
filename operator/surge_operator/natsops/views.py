"""Pure: system-account monitoring responses (`$SYS.REQ.SERVER.PING.VARZ` / `.JSZ`, one
answer per server) -> the views `plan` decides on.

Stream health is taken from the stream leader's own answer only: a follower's view of its
peers is stale by design (it is not the one replicating), which is the same reason KEDA's
users saw stale `num_pending` from followers (kedacore/keda #7322, #3860).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from surge_operator.natsops.plan import ServerView, StreamView
from surge_operator.resources.nats.config import CONFIG_TAG_PREFIX


@dataclass(frozen=True)
class JetStreamView:
    streams: list[StreamView]
    meta_leader: str | None
    meta_peers: list[str]
    #: stream name -> the mirror's lag (messages behind its origin), for mirrored streams
    mirror_lag: dict[str, int]


def config_hash_of(tags: Iterable[object]) -> str | None:
    """The digest in a server's config tag (see resources.nats.config), None without one."""
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(CONFIG_TAG_PREFIX):
            return tag.removeprefix(CONFIG_TAG_PREFIX)
    return None


def servers_from_varz(responses: Iterable[Mapping[str, Any]]) -> list[ServerView]:
    out = []
    for response in responses:
        data = response.get("data") or {}
        out.append(
            ServerView(
                name=str(data.get("server_name") or ""),
                server_id=str(data.get("server_id") or ""),
                config_digest=str(data.get("config_digest") or ""),
                config_hash=config_hash_of(data.get("tags") or []),
            )
        )
    return sorted(out, key=lambda s: s.name)


def jetstream_from_jsz(responses: Iterable[Mapping[str, Any]]) -> JetStreamView:
    leader_views: dict[str, StreamView] = {}
    members: dict[str, int] = {}
    mirror_lag: dict[str, int] = {}
    meta_leader: str | None = None
    meta_peers: list[str] = []
    for response in responses:
        server = str((response.get("server") or {}).get("name") or "")
        data = response.get("data") or {}
        meta = data.get("meta_cluster") or {}
        if meta.get("leader") and meta.get("leader") == server:
            meta_leader = server
            meta_peers = [server] + [str(r.get("name")) for r in meta.get("replicas") or []]
        for account in data.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                name = str(stream.get("name"))
                cluster = stream.get("cluster") or {}
                replicas = cluster.get("replicas") or []
                members[name] = max(members.get(name, 0), 1 + len(replicas))
                mirror = stream.get("mirror")
                if mirror is not None:
                    mirror_lag[name] = int(mirror.get("lag") or 0)
                if cluster.get("leader") != server and replicas:
                    continue  # a follower's answer: not authoritative
                leader = cluster.get("leader") or (server if not replicas else None)
                leader_views[name] = StreamView(
                    name=name,
                    replicas=1 + len(replicas),
                    leader=leader,
                    current=(1 if leader else 0) + sum(1 for r in replicas if r.get("current")),
                    lag=max((int(r.get("lag") or 0) for r in replicas), default=0),
                )
    streams = [
        leader_views.get(name, StreamView(name=name, replicas=n, leader=None, current=0))
        for name, n in sorted(members.items())
    ]
    return JetStreamView(streams, meta_leader, meta_peers, mirror_lag)
