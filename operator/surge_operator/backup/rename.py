"""Restoring a KV bucket under another cluster's name.

JetStream's restore takes a stream's new identity from the config it is given, so the
message, dead-letter and replies streams restore under new names as they are: their
subjects come from the subject prefix, which a restore keeps. A KV bucket's messages carry
the bucket's name in their subjects (``$KV.<bucket>.<key>``), and a restore never rewrites
stored subjects. So a bucket is restored under a temporary name and mirrored into its new
name with a subject transform (``$KV.<old>.>`` to ``$KV.<new>.>``): a mirror keeps every
sequence (KV revisions), timestamp (ages and TTLs) and header (delete markers). Once the
mirror has caught up it is promoted (mirror config dropped, nats-server >= 2.12, as in
failover) and the temporary stream deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client

from surge_operator.backup.snapshot import DEFAULT_API_PREFIX, api_call, restore_stream
from surge_operator.errors import SnapshotError

#: how long a local mirror may take to copy a restored bucket
CATCH_UP_SECONDS = 120.0


def temporary_name(target: str) -> str:
    return f"{target}-restore"


def renamed_config(config: dict[str, Any], name: str, *, old: str, new: str) -> dict[str, Any]:
    """The stream's config under its new `name` (pure); its description follows the
    cluster's stream name from `old` to `new`."""
    out = {**config, "name": name}
    if isinstance(out.get("description"), str):
        out["description"] = out["description"].replace(old, new)
    return out


async def delete_stream(nc: Client, name: str, api_prefix: str = DEFAULT_API_PREFIX) -> None:
    """Best effort (clean-up paths only)."""
    with contextlib.suppress(SnapshotError):
        await api_call(nc, f"{api_prefix}.STREAM.DELETE.{name}", None, f"delete {name}")


async def restore_bucket_renamed(
    nc: Client,
    config: dict[str, Any],
    state: dict[str, Any],
    chunks: AsyncIterator[bytes],
    *,
    old_bucket: str,
    new_bucket: str,
    api_prefix: str = DEFAULT_API_PREFIX,
    catch_up: float = CATCH_UP_SECONDS,
) -> dict[str, Any]:
    """Restore the KV stream of `old_bucket` as `new_bucket`; returns the stream's info."""
    target = f"KV_{new_bucket}"
    temp = temporary_name(target)
    what = f"restore of bucket {old_bucket} as {new_bucket}"
    # Left by an attempt that was killed mid-way (the name is only ever ours): clear it.
    await delete_stream(nc, temp, api_prefix)
    # Its own subject: the original bucket may still live on this server.
    staged = await restore_stream(
        nc, {**config, "name": temp, "subjects": [temp]}, state, chunks, api_prefix=api_prefix
    )
    try:
        final = renamed_config(config, target, old=old_bucket, new=new_bucket)
        final["subjects"] = [f"$KV.{new_bucket}.>"]
        mirror = {k: v for k, v in final.items() if k != "subjects"}
        mirror["mirror"] = {
            "name": temp,
            "subject_transforms": [{"src": f"$KV.{old_bucket}.>", "dest": f"$KV.{new_bucket}.>"}],
        }
        await api_call(nc, f"{api_prefix}.STREAM.CREATE.{target}", mirror, what)
        want = staged.get("state", {})
        await _caught_up(nc, target, want, api_prefix, catch_up, what)
        info = await api_call(nc, f"{api_prefix}.STREAM.UPDATE.{target}", final, what)
        if (info.get("config") or {}).get("mirror"):
            raise SnapshotError(f"{what}: the server kept the mirror (needs nats-server >= 2.12)")
        return info
    finally:
        await delete_stream(nc, temp, api_prefix)


async def _caught_up(
    nc: Client, stream: str, want: dict[str, Any], api_prefix: str, within: float, what: str
) -> None:
    # A mirror copies in order, so holding as many messages as the source means all of them.
    messages = int(want.get("messages", 0))
    deadline = time.monotonic() + within
    while True:
        info = await api_call(nc, f"{api_prefix}.STREAM.INFO.{stream}", None, what)
        have = int(info.get("state", {}).get("messages", 0))
        if have == messages:
            return
        if time.monotonic() > deadline:
            raise SnapshotError(
                f"{what}: the mirror holds {have} of {messages} messages after {within:.0f} s"
            )
        await asyncio.sleep(0.2)
