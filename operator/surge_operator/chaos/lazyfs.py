"""The page cache of a lazy filesystem: writes stay in memory until fsync. Pure.

Jepsen's lazyfs technique, which `surge chaos` uses to simulate power loss under a real
nats-server: file data written through the filesystem is held here, reads see it, and only
an fsync (or fdatasync) of a file moves that file's data to the backing directory. A power
loss is the loss of this object; whatever was never synced is gone. Metadata (create,
mkdir, rename, unlink) goes straight to the backing directory, as in lazyfs.

`DirtyFile` is one file's unsynced state over a backing file of known size:

    extents   non-overlapping (offset -> bytes) written since the last sync
    cut       backing bytes at offsets >= cut are logically gone (a truncate shrank the file)
    size      the logical size the reader sees

`PageCache` keys them by path and follows renames and unlinks. The FUSE edge
(lazyfs_fuse.py) reads the backing file and applies a `Flush` to it; nothing here does I/O.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Flush:
    """What an fsync writes to the backing file: cut it to `truncate_to` (when a truncate
    shrank it), write each extent, then set its length to `size`."""

    truncate_to: int | None
    extents: tuple[tuple[int, bytes], ...]
    size: int


class DirtyFile:
    """One file's unsynced writes and truncates over a backing file of `base_size` bytes."""

    __slots__ = ("_data", "_starts", "base_size", "cut", "size")

    def __init__(self, base_size: int) -> None:
        self.base_size = base_size
        self.size = base_size
        self.cut = base_size
        self._starts: list[int] = []  # sorted keys of _data
        self._data: dict[int, bytes] = {}

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return
        end = offset + len(data)
        merged_start, merged = offset, bytearray(data)
        # Absorb every extent that overlaps or touches [offset, end); newer bytes win.
        i = bisect.bisect_left(self._starts, offset)
        if i > 0 and self._starts[i - 1] + len(self._data[self._starts[i - 1]]) >= offset:
            i -= 1
        while i < len(self._starts) and self._starts[i] <= end:
            start = self._starts[i]
            old = self._data.pop(start)
            del self._starts[i]
            if start < merged_start:
                merged = bytearray(old[: merged_start - start]) + merged
                merged_start = start
            old_end = start + len(old)
            merged_end = merged_start + len(merged)
            if old_end > merged_end:
                merged += old[len(old) - (old_end - merged_end) :]
        bisect.insort(self._starts, merged_start)
        self._data[merged_start] = bytes(merged)
        self.size = max(self.size, end)

    def truncate(self, length: int) -> None:
        self.size = length
        self.cut = min(self.cut, length)
        for start in list(self._starts):
            data = self._data[start]
            if start >= length:
                del self._data[start]
                self._starts.remove(start)
            elif start + len(data) > length:
                self._data[start] = data[: length - start]

    def read(self, offset: int, length: int, backing: bytes) -> bytes:
        """`length` bytes at `offset` as the reader sees them, given the backing file's
        bytes read at the same offset (possibly fewer)."""
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        view = bytearray(end - offset)
        valid = max(0, min(len(backing), self.cut - offset, end - offset))
        view[:valid] = backing[:valid]
        i = max(0, bisect.bisect_right(self._starts, offset) - 1)
        while i < len(self._starts) and self._starts[i] < end:
            start = self._starts[i]
            data = self._data[start]
            lo, hi = max(start, offset), min(start + len(data), end)
            if lo < hi:
                view[lo - offset : hi - offset] = data[lo - start : hi - start]
            i += 1
        return bytes(view)

    def flush(self) -> Flush:
        return Flush(
            truncate_to=self.cut if self.cut < self.base_size else None,
            extents=tuple((s, self._data[s]) for s in self._starts),
            size=self.size,
        )

    @property
    def unsynced_bytes(self) -> int:
        return sum(len(d) for d in self._data.values())


class PageCache:
    """Every file's unsynced data, by path (relative to the mount)."""

    def __init__(self) -> None:
        self._files: dict[str, DirtyFile] = {}

    def dirty(self, path: str) -> DirtyFile | None:
        return self._files.get(path)

    def write(self, path: str, offset: int, data: bytes, *, backing_size: int) -> None:
        self._file(path, backing_size).write(offset, data)

    def truncate(self, path: str, length: int, *, backing_size: int) -> None:
        self._file(path, backing_size).truncate(length)

    def size(self, path: str, backing_size: int) -> int:
        file = self._files.get(path)
        return backing_size if file is None else file.size

    def read(self, path: str, offset: int, length: int, backing: bytes) -> bytes:
        file = self._files.get(path)
        return backing[:length] if file is None else file.read(offset, length, backing)

    def fsync(self, path: str) -> Flush | None:
        """The data to persist for `path`; it is no longer dirty afterwards."""
        file = self._files.pop(path, None)
        return None if file is None else file.flush()

    def fsync_all(self) -> list[tuple[str, Flush]]:
        """Everything to persist (the kernel's writeback, or sync(1)); nothing is dirty after."""
        files, self._files = self._files, {}
        return [(path, file.flush()) for path, file in files.items()]

    def rename(self, old: str, new: str) -> None:
        self._files.pop(new, None)
        prefix = old + "/"
        for path in [p for p in self._files if p == old or p.startswith(prefix)]:
            self._files[new + path[len(old) :]] = self._files.pop(path)

    def unlink(self, path: str) -> None:
        self._files.pop(path, None)

    @property
    def unsynced_bytes(self) -> int:
        return sum(f.unsynced_bytes for f in self._files.values())

    def _file(self, path: str, backing_size: int) -> DirtyFile:
        file = self._files.get(path)
        if file is None:
            file = self._files[path] = DirtyFile(base_size=backing_size)
        return file
