"""The FUSE edge of the lazy filesystem: the daemon process (libfuse3 through mfusepy).

`LazyOps` passes every operation through to a backing directory except file data, which
goes to a `lazyfs.PageCache` until an fsync/fdatasync of that file (close does not sync:
lazyfs's choice, and the kernel's). Run as
`python -m surge_operator.chaos.lazyfs_fuse BACKING MOUNT CONTROL_SOCKET`; lazyfs_mount.py
starts it and simulates a power loss by killing it (its memory is the page cache).

The control socket (a Unix socket, one command per connection, like lazyfs's FIFO) answers
`dirty` with the unsynced byte count and `writeback` by persisting every file, which is
what the kernel does on its own to data older than `vm.dirty_expire_centisecs` (30 s).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

import mfusepy

from surge_operator.chaos.lazyfs import Flush, PageCache

_STAT_KEYS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size")
_TIME_KEYS = ("st_atime", "st_mtime", "st_ctime")


def apply_flush(fd: int, flush: Flush) -> None:
    """Persist one file's synced data to its backing file."""
    if flush.truncate_to is not None:
        os.ftruncate(fd, flush.truncate_to)
    for offset, data in flush.extents:
        os.pwrite(fd, data, offset)
    os.ftruncate(fd, flush.size)


def _backing_flags(flags: int) -> int:
    # The kernel computes append offsets itself, a truncate on open is cached like any other,
    # and fsync must be able to write the data back whatever mode the file was opened in.
    return (flags & ~(os.O_APPEND | os.O_TRUNC | os.O_ACCMODE | os.O_CREAT)) | os.O_RDWR


class LazyOps(mfusepy.Operations):  # type: ignore[misc]  # mfusepy is untyped
    use_ns = True

    def __init__(self, backing: Path) -> None:
        self.backing = backing
        self.cache = PageCache()
        self._mutex = threading.Lock()

    def _real(self, path: str) -> str:
        return str(self.backing) + path

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._real(path))
        attrs: dict[str, Any] = {k: getattr(st, k) for k in _STAT_KEYS}
        for key in _TIME_KEYS:
            attrs[key] = getattr(st, key + "_ns")
        with self._mutex:
            attrs["st_size"] = self.cache.size(path, st.st_size)
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._real(path), amode):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._real(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._real(path))
        return 0

    def unlink(self, path: str) -> int:
        with self._mutex:
            os.unlink(self._real(path))
            self.cache.unlink(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._mutex:
            os.rename(self._real(old), self._real(new))
            self.cache.rename(old, new)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._real(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
        return {k: getattr(sv, k) for k in (*keys, "f_files", "f_frsize", "f_namemax")}

    def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
        # Creating the file is metadata: persisted at once (its data is not).
        return os.open(self._real(path), _backing_flags(flags) | os.O_CREAT, mode)

    def open(self, path: str, flags: int) -> int:
        fd = os.open(self._real(path), _backing_flags(flags))
        if flags & os.O_TRUNC:
            with self._mutex:
                self.cache.truncate(path, 0, backing_size=os.fstat(fd).st_size)
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._mutex:
            return self.cache.read(path, offset, size, os.pread(fh, size, offset))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            self.cache.write(path, offset, data, backing_size=os.fstat(fh).st_size)
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._mutex:
            size = os.fstat(fh).st_size if fh is not None else os.stat(self._real(path)).st_size
            self.cache.truncate(path, length, backing_size=size)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._mutex:
            flush = self.cache.fsync(path)
            if flush is not None:
                apply_flush(fh, flush)
        return 0

    def writeback(self) -> int:
        """Persist every file's unsynced data; returns the bytes written back."""
        with self._mutex:
            dirty = self.cache.unsynced_bytes
            for path, flush in self.cache.fsync_all():
                with contextlib.suppress(FileNotFoundError):  # unlinked since: nothing to keep
                    fd = os.open(self._real(path), os.O_RDWR)
                    try:
                        apply_flush(fd, flush)
                    finally:
                        os.close(fd)
        return dirty

    def unsynced_bytes(self) -> int:
        with self._mutex:
            return self.cache.unsynced_bytes

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0  # metadata is persisted as it happens

    def flush(self, path: str, fh: int) -> int:
        return 0  # close(2) is not a sync

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


def _control(ops: LazyOps, path: Path) -> socketserver.UnixStreamServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            command = self.rfile.readline().strip()
            if command == b"writeback":
                self.wfile.write(b"ok %d\n" % ops.writeback())
            elif command == b"dirty":
                self.wfile.write(b"ok %d\n" % ops.unsynced_bytes())
            else:
                self.wfile.write(b"error unknown command\n")

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socketserver.UnixStreamServer(str(path), Handler)
    threading.Thread(target=server.serve_forever, name="lazyfs-control", daemon=True).start()
    return server


def serve(backing: Path, mountpoint: Path, control: Path) -> None:
    """Mount and serve until unmounted or killed (blocks; the daemon's main)."""
    ops = LazyOps(backing)
    _control(ops, control)
    # No auto_unmount: its fusermount3 helper would unmount by path after a power loss and
    # could take the next mount at the same path with it. SIGTERM (also sent when the parent
    # dies) makes libfuse unmount on its way out; LazyMount unmounts after a SIGKILL.
    mfusepy.FUSE(ops, str(mountpoint), foreground=True, fsname="surge-lazyfs")


if __name__ == "__main__":
    serve(*(Path(arg).resolve() for arg in sys.argv[1:4]))
