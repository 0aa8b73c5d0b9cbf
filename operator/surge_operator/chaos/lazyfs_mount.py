"""Mount the lazy filesystem (a daemon process) and take its power away.

The daemon (lazyfs_fuse.py) holds every unsynced byte in its own memory, so a power loss
is what it is on a machine: `power_loss()` SIGKILLs the daemon, whatever was never fsynced
is gone, and a lazy unmount removes the dead mount; the next `mount()` over the same
backing directory sees only what was synced. `writeback()` persists everything, as the
kernel does to old dirty pages; `dirty()` tells how many bytes a power loss would take now.
This module does not import the FUSE binding: only the daemon needs it.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from surge_workers.lifetime import die_with_parent

DAEMON = "surge_operator.chaos.lazyfs_fuse"


class LazyMountError(RuntimeError):
    """The lazy filesystem could not be mounted (no /dev/fuse, libfuse3 or mfusepy)."""


def fuse_missing() -> str | None:
    """Why the lazy filesystem cannot run here, or None when it can."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None or ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is missing (apt-get install fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "mfusepy is missing (pip install 'surge[chaos]')"
    return None


class LazyMount:
    """A lazy filesystem over `backing`, mounted at `mountpoint` by a daemon process."""

    def __init__(self, backing: Path, mountpoint: Path) -> None:
        self.backing = backing
        self.mountpoint = mountpoint
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = backing.parent / f"{backing.name}.lazyfs.log"
        self.control_path = backing.parent / f"{backing.name}.lazyfs.sock"

    def mount(self, timeout: float = 15.0) -> LazyMount:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    DAEMON,
                    str(self.backing),
                    str(self.mountpoint),
                    str(self.control_path),
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        while not self.mounted:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise LazyMountError(
                    f"lazy filesystem did not mount at {self.mountpoint}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        return self

    @property
    def mounted(self) -> bool:
        # Not os.path.ismount: a mount whose daemon died fails lstat (ENOTCONN) and reads
        # as "not a mount" while it still is one.
        target = str(self.mountpoint.resolve(strict=False))
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            return any(line.split()[1] == target for line in mounts)

    def writeback(self) -> int:
        """Persist every unsynced byte now; returns how many there were."""
        return self._command("writeback")

    def dirty(self) -> int:
        """How many bytes are written but not yet persisted."""
        return self._command("dirty")

    def _command(self, command: str) -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(self.control_path))
            sock.sendall(command.encode() + b"\n")
            reply = sock.makefile("rb").readline().decode().split()
        if reply[:1] != ["ok"]:
            raise LazyMountError(f"lazyfs {command}: {' '.join(reply)}")
        return int(reply[1])

    def power_loss(self) -> None:
        """Every unsynced byte is gone: SIGKILL of the daemon, then the dead mount removed."""
        self._kill()
        self._unmount()

    def unmount(self) -> None:
        """Orderly: unmount, and the daemon exits (unsynced data is dropped all the same)."""
        self._unmount()
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self._kill()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def _unmount(self, timeout: float = 5.0) -> None:
        tool = shutil.which("fusermount3")
        args = [tool, "-u", "-z"] if tool else ["umount", "-l"]
        deadline = time.monotonic() + timeout
        while self.mounted:
            if time.monotonic() > deadline:
                raise LazyMountError(f"{self.mountpoint} is still mounted after {timeout} s")
            with contextlib.suppress(OSError):
                subprocess.run([*args, str(self.mountpoint)], capture_output=True, check=False)
            time.sleep(0.05)
