"""Polling helpers: wait for an HTTP(S) health endpoint or a condition, with a deadline."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class NotReadyError(RuntimeError):
    """A component did not become ready before its deadline."""


def http_ok(url: str, *, token: str | None = None, ca_file: Path | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Call check until it returns True; raise NotReadyError after timeout or if not alive()."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise NotReadyError(f"{what}: process exited")
        if time.monotonic() > deadline:
            raise NotReadyError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)
