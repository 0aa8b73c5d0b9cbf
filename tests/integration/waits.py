"""Bounded waits for the integration tests (never a fixed sleep: the machine may be
loaded). Two kinds: `wait_until` fails the test when the condition is not met in time;
`first_value` and `holds_within` only stop waiting, for tests that measure what happened
and assert on it afterwards with a message of their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s")


async def first_value(
    read: Callable[[], Awaitable[T | None]], within: float, interval: float = 0.2
) -> T | None:
    """The first value `read` gives that is not None, or None when `within` runs out."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if value is not None or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)


async def holds_within(check: Callable[[], bool], within: float, interval: float = 0.2) -> bool:
    """Whether `check` came true before `within` ran out."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True
