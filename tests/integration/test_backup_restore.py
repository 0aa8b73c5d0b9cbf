"""Backups and restore on real components: nats-server, the real worker and handler, an
S3-compatible server and a directory (what a PVC is to the backup Job's pod)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tests.integration.backup_support import (
    NAMESPACE,
    cluster_ref,
    delete_cluster_streams,
    directory_store,
    restore_from,
)
from tests.integration.dataplane_support import (
    backlog,
    provisioned,
    publish,
    running_worker,
    unique_pipeline,
    work_off,
    worker_settings,
)

from surge_operator.backup.command import run_backup, run_list, run_restore
from surge_operator.backup.conditions import parse_time
from surge_operator.backup.locations import open_store
from surge_operator.backup.manifest import PartRole
from surge_operator.backup.runner import back_up, list_backups
from surge_operator.backup.s3local import LocalS3
from surge_operator.backup.verify import message_ids, transcript_ids, transcripts
from surge_operator.errors import (
    BackupTargetAuthError,
    BackupTargetError,
    BackupTargetFullError,
    RestoreConflictError,
)
from surge_operator.status import timestamp
from surge_workers.contract import PRIORITIES, scoped_id
from surge_workers.handlers import route_and_store
from surge_workers.natsserver import NatsServer
from surge_workers.pipeline import PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(s3: LocalS3) -> Mapping[str, str]:
    return {**os.environ, **s3.env()}


async def _publish_many(js: object, config: PipelineConfig, count: int, tag: str) -> set[str]:
    """Publish `count` messages over two tenants; returns their tenant-scoped ids."""
    ids = set()
    for i in range(count):
        msg_id, tenant = f"{tag}-{i:05d}", f"tenant-{i % 2}"
        await publish(
            js,  # type: ignore[arg-type]
            config,
            msg_id=msg_id,
            conversation=f"conv-{i % 17}",
            priority=PRIORITIES[i % 3],
            tenant=tenant,
        )
        ids.add(scoped_id(tenant, msg_id))
    return ids


@pytest.mark.parametrize("kind", ["s3", "dir"])
async def test_everything_acknowledged_before_the_backup_survives_losing_the_cluster(
    kind: str, nats_server: NatsServer, s3_server: LocalS3, s3_bucket: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    target = f"s3://{s3_bucket}/prod" if kind == "s3" else f"dir:{tmp_path / 'pvc'}"
    store = open_store(target, _env(s3_server))
    try:
        ids = await _publish_many(js, config, 300, "a")
        await work_off(nats_server.url, js, config, route_and_store, within=60)
        routed_before = await transcript_ids(js, config.stream)
        assert set(routed_before) == ids

        manifest = await back_up(
            nc, store, cluster_ref(config), spool=tmp_path / "spool", nonce=secrets.token_hex(3)
        )
        assert manifest.part(PartRole.MESSAGES) is not None
        assert manifest.part(PartRole.MESSAGES).last_seq == 300  # type: ignore[union-attr]
        await delete_cluster_streams(js, config.stream)

        await restore_from(nc, store, cluster_ref(config), spool=tmp_path / "spool")
        restored = await message_ids(js, config.stream, config.subject_prefix)
        assert set(restored) == ids
        assert set(restored.values()) == {1}
        assert await transcript_ids(js, config.stream) == routed_before
        # consumer state came back too: nothing is redelivered after the restore
        assert await backlog(js, config) == 0
        routing = await js.key_value(f"{config.stream}-routing")
        assert len(await routing.keys()) > 0
    finally:
        await nc.close()


async def test_a_backup_taken_mid_surge_restores_consistently(
    nats_server: NatsServer, s3_server: LocalS3, s3_bucket: str, tmp_path: Path
) -> None:
    """Publishing and processing go on while the backup runs. After a restore into a new
    server, every id acknowledged before the backup started is there, and draining the
    restored queue gives each of them exactly one transcript (no loss, no double effect)."""
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    store = open_store(f"s3://{s3_bucket}", _env(s3_server))
    acked_before = await _publish_many(js, config, 200, "pre")
    stop = asyncio.Event()

    async def surge() -> set[str]:
        more: set[str] = set()
        i = 0
        while not stop.is_set():
            more |= await _publish_many(js, config, 20, f"surge{i}")
            i += 1
        return more

    try:
        async with running_worker(nats_server.url, worker_settings(config), route_and_store):
            publisher = asyncio.create_task(surge())
            await asyncio.sleep(0.5)
            manifest = await back_up(
                nc, store, cluster_ref(config), spool=tmp_path / "spool", nonce=secrets.token_hex(3)
            )
            stop.set()
            await publisher
    finally:
        await nc.close()

    fresh = NatsServer(store_dir=tmp_path / "fresh")
    fresh.start()
    try:
        nc2, js2 = await provisioned_empty(fresh.url)
        await restore_from(
            nc2, store, cluster_ref(config), spool=tmp_path / "spool2", backup=manifest.id
        )
        restored = await message_ids(js2, config.stream, config.subject_prefix)
        assert acked_before <= set(restored)
        await work_off(fresh.url, js2, config, route_and_store, within=60)
        entries = await transcripts(js2, config.stream)
        by_id = Counter(scoped_id(e.tenant, e.msg_id) for e in entries)
        assert set(restored) <= set(by_id), "a restored message was never processed"
        assert set(by_id.values()) == {1}, "a message was processed twice"
        # A transcript without its message in the backup belongs to a message accepted
        # after the message stream's snapshot point (its effect survived, so it is no loss).
        cut = manifest.part(PartRole.MESSAGES).last_seq  # type: ignore[union-attr]
        assert all(e.seq > cut for e in entries if scoped_id(e.tenant, e.msg_id) not in restored)
        await nc2.close()
    finally:
        fresh.cleanup()


async def provisioned_empty(url: str) -> tuple[object, object]:
    import nats

    nc = await nats.connect(url)
    return nc, nc.jetstream()


async def test_retention_keeps_the_newest_backups_and_the_cli_lists_them(
    nats_server: NatsServer, s3_server: LocalS3, s3_bucket: str
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    await _publish_many(js, config, 10, "r")
    await nc.close()
    env = {**_env(s3_server), "SURGE_NATS_URL": nats_server.url}
    cluster = f"{NAMESPACE}/{cluster_ref(config).name}"
    target = f"s3://{s3_bucket}/keep"
    made = []
    for _ in range(4):
        result = await run_backup(
            cluster=cluster,
            stream=config.stream,
            subject_prefix=config.subject_prefix,
            target=target,
            keep=2,
            api_prefix="$JS.API",
            nats_url=None,
            record=True,
            env=env,
        )
        made.append(result["backup"])
        # one time format for runs, manifests and status (status.timestamp)
        assert result["finished_at"] == timestamp(parse_time(result["finished_at"]))  # type: ignore[arg-type]
        await asyncio.sleep(1.1)  # ids are per second
    listed = await run_list(target=target, cluster=cluster, env=env)
    assert [r["id"] for r in listed] == made[-2:]
    assert all(r["complete"] for r in listed)


async def test_restore_refuses_to_overwrite_an_existing_stream(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    store = directory_store(tmp_path)
    try:
        await _publish_many(js, config, 5, "x")
        await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abcdef")
        with pytest.raises(RestoreConflictError, match="already exists"):
            await restore_from(nc, store, cluster_ref(config), spool=tmp_path / "s")
    finally:
        await nc.close()


async def test_restore_cli_goes_straight_into_a_nats(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    store = directory_store(tmp_path)
    ids = await _publish_many(js, config, 25, "cli")
    manifest = await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="123abc")
    await delete_cluster_streams(js, config.stream)
    try:
        result = await run_restore(
            source=f"dir:{tmp_path / 'pvc'}/{NAMESPACE}/{cluster_ref(config).name}/latest",
            nats_url=nats_server.url,
            stream=None,
            subject_prefix=None,
            api_prefix="$JS.API",
            env={},
        )
        assert result["backup"] == manifest.id
        assert set(await message_ids(js, config.stream, config.subject_prefix)) == ids
    finally:
        await nc.close()


async def test_wrong_credentials_are_an_auth_failure_not_a_hang(
    nats_server: NatsServer, s3_server: LocalS3, s3_bucket: str, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_server.url, config)
    env = {**s3_server.env(), "SURGE_S3_SECRET_ACCESS_KEY": "not-the-secret-" + uuid.uuid4().hex}
    store = open_store(f"s3://{s3_bucket}", env)
    try:
        with pytest.raises(BackupTargetAuthError):
            await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abcdef")
    finally:
        await nc.close()


async def test_an_unreachable_target_fails_fast(nats_server: NatsServer, tmp_path: Path) -> None:
    config = unique_pipeline()
    nc, _ = await provisioned(nats_server.url, config)
    env = {
        "SURGE_S3_ENDPOINT": "http://127.0.0.1:9",  # discard port: nothing listens
        "SURGE_S3_ACCESS_KEY_ID": "a",
        "SURGE_S3_SECRET_ACCESS_KEY": "b",
    }
    store = open_store("s3://bucket", env)
    try:
        with pytest.raises(BackupTargetError):
            await asyncio.wait_for(
                back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abcdef"), 60
            )
    finally:
        await nc.close()


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real filesystem that fills up, like a small PVC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_volume_fails_the_backup_and_leaves_no_complete_one(
    nats_server: NatsServer, tiny_volume: Path, tmp_path: Path
) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_server.url, config)
    for i in range(40):  # ~40 x 16 KiB: far more than the volume holds
        await publish(js, config, msg_id=f"big-{i}", conversation="c", data=os.urandom(16 * 1024))
    store = open_store(f"dir:{tiny_volume}", {})
    try:
        with pytest.raises(BackupTargetFullError, match="no space left"):
            await back_up(nc, store, cluster_ref(config), spool=tmp_path / "s", nonce="abcdef")
        complete, _ = await list_backups(store, NAMESPACE, cluster_ref(config).name)
        assert complete == []
    finally:
        await nc.close()


def test_bench_backup_prints_the_contract_and_loses_nothing(s3_server: LocalS3) -> None:
    """(s3_server: the bench starts its own, but only where the fixture finds the binary)"""
    from surge_operator.backup.bench import run_bench

    result = run_bench(400)
    assert {"messages", "snapshot_s", "restore_s", "restored", "lost", "bytes"} <= set(result)
    assert result["messages"] == 400
    assert result["restored"] == 400
    assert result["lost"] == 0
    assert result["bytes"] > 0
