"""The lazy filesystem through the kernel: what a process writes is read back at once, but a
power loss keeps only what was fsynced; creating and renaming files is persisted at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from surge_operator.chaos.lazyfs_mount import LazyMount

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60)]


def write(path: Path, data: bytes, *, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_a_power_loss_keeps_what_was_fsynced_and_drops_the_rest(lazy_mount: LazyMount) -> None:
    log = lazy_mount.mountpoint / "log"
    write(log, b"synced;", fsync=True)
    write(log, b"closed-not-synced;", fsync=False)
    write(lazy_mount.mountpoint / "never-synced", b"data", fsync=False)
    assert log.read_bytes() == b"synced;closed-not-synced;"  # readers see everything
    assert lazy_mount.dirty() == len(b"closed-not-synced;data")

    lazy_mount.power_loss()
    lazy_mount.mount()

    assert log.read_bytes() == b"synced;"
    # The file's creation was persisted, its data was not: Jepsen's "empty file".
    assert (lazy_mount.mountpoint / "never-synced").read_bytes() == b""


def test_a_rename_over_a_file_without_fsync_leaves_it_empty(lazy_mount: LazyMount) -> None:
    meta = lazy_mount.mountpoint / "meta"
    write(meta, b"v1", fsync=True)
    tmp = lazy_mount.mountpoint / "meta.tmp"
    write(tmp, b"v2", fsync=False)
    tmp.rename(meta)
    assert meta.read_bytes() == b"v2"

    lazy_mount.power_loss()
    lazy_mount.mount()

    assert meta.read_bytes() == b""
    assert not tmp.exists()


def test_writeback_persists_everything_like_the_kernels_flusher(lazy_mount: LazyMount) -> None:
    sub = lazy_mount.mountpoint / "dir"
    sub.mkdir()
    write(sub / "a", b"0123456789", fsync=False)
    with (sub / "a").open("r+b") as f:
        f.truncate(4)
    assert lazy_mount.writeback() == 4
    assert lazy_mount.dirty() == 0

    lazy_mount.power_loss()
    lazy_mount.mount()

    assert (sub / "a").read_bytes() == b"0123"
