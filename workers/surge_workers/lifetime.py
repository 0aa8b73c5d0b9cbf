"""Child processes that never outlive their parent.

Tests, `surge demo` and the bench start nats-servers and workers; if the parent is killed
(Ctrl-C twice, a CI timeout, kill -9) its cleanup code never runs. On Linux the kernel can
deliver SIGTERM to the child when the parent dies (PR_SET_PDEATHSIG), so no orphan keeps
a port or a store directory.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not glibc: the parent's own cleanup is all there is


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess/asyncio process creation (None off Linux)."""
    return _die_with_parent if sys.platform == "linux" else None
