"""Cancelling background tasks reliably.

nats-py swallows ``CancelledError`` inside ``publish``/flush (``Client._flush_pending``),
so a single ``task.cancel()`` that lands there is lost and ``await task`` can hang for
ever. Cancel repeatedly until the task is really done, within a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], grace: float = 2.0) -> int:
    """Cancel until done; returns how many tasks were still running after ``grace``."""
    loop = asyncio.get_running_loop()
    pending = {task for task in tasks if not task.done()}
    deadline = loop.time() + grace
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in list(pending):
        task.cancel()
    return len(pending)


def retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a finished task's exception as seen (avoids 'never retrieved' noise)."""
    if task.done() and not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
