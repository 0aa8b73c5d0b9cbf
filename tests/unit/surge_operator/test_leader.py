"""Lease election judged by the local monotonic clock, client-go timings, fencing token,
and bounded renewals (a hung API server cannot stretch leadership)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from surge_operator.errors import KubeApiError, KubeConflictError
from surge_operator.leader import LeaseElector, LeaseView, Observation, can_take, observe, view
from surge_operator.settings import LeaderSettings

FAST = LeaderSettings(
    lease_name="l",
    lease_namespace="ns",
    lease_seconds=1.5,
    renew_deadline_seconds=1.0,
    retry_seconds=0.2,
    identity="me",
)


def lease(
    holder: str, rv: str = "1", renew: str = "2020-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "l", "namespace": "ns", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew, **spec},
    }


def test_client_go_defaults() -> None:
    s = LeaderSettings()
    assert (s.lease_seconds, s.renew_deadline_seconds, s.retry_seconds) == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(
    ("retry", "deadline", "lease_s"), [(2, 10, 10), (10, 10, 15), (0, 10, 15), (3, 2, 15)]
)
def test_settings_refuse_unsafe_timings(retry: float, deadline: float, lease_s: float) -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease"):
        LeaderSettings(retry_seconds=retry, renew_deadline_seconds=deadline, lease_seconds=lease_s)


def test_a_held_lease_is_taken_only_after_a_full_duration_on_our_own_clock() -> None:
    # renewTime says 2020: comparing wall clocks would call it long expired. We don't.
    first = observe(None, view(lease("other")), now=100.0)
    assert not can_take(first, "me", 100.0)
    assert not can_take(observe(first, view(lease("other")), 114.0), "me", 114.0)
    assert can_take(observe(first, view(lease("other")), 115.5), "me", 115.5)


def test_every_renewal_restarts_the_wait() -> None:
    first = observe(None, view(lease("other", rv="1")), now=100.0)
    renewed = observe(first, view(lease("other", rv="2")), now=110.0)
    assert renewed.changed_at == 110.0
    assert not can_take(renewed, "me", 120.0)
    assert can_take(renewed, "me", 125.1)


def test_free_or_own_lease_can_be_taken_at_once() -> None:
    assert can_take(Observation(LeaseView("", 15, 0, "1/"), 0.0), "me", 0.0)
    assert can_take(Observation(LeaseView("me", 15, 0, "1/"), 0.0), "me", 0.0)


class FakeLeases:
    """An API server holding one Lease; `hang` makes every call block (a dead server)."""

    def __init__(self, current: dict[str, Any] | None = None) -> None:
        self.current = current
        self.hang = False
        self.fail = False
        self.rv = 1

    async def _gate(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise KubeApiError("connection refused")

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        await self._gate()
        return self.current

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        await self._gate()
        self.current = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        return self.current

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        await self._gate()
        assert self.current is not None
        if obj["metadata"].get("resourceVersion") != self.current["metadata"]["resourceVersion"]:
            raise KubeConflictError("conflict")
        self.rv += 1
        self.current = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        return self.current


async def test_the_token_is_the_lease_transitions_when_acquired() -> None:
    api = FakeLeases(lease("", leaseTransitions=6))
    elector = LeaseElector(api, FAST)
    assert await elector.acquire(asyncio.Event())
    assert elector.token == 7
    assert elector.holds()
    assert api.current is not None
    assert api.current["spec"]["holderIdentity"] == "me"


async def test_a_hung_api_server_ends_leadership_within_the_renew_deadline() -> None:
    api = FakeLeases()
    elector = LeaseElector(api, FAST)
    assert await elector.acquire(asyncio.Event())
    lost, stop = asyncio.Event(), asyncio.Event()
    keeper = asyncio.create_task(elector.keep(lost, stop))
    await asyncio.sleep(0.5)
    assert elector.holds()
    api.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(lost.wait(), timeout=FAST.renew_deadline_seconds + 1.0)
    assert loop.time() - started <= FAST.renew_deadline_seconds + 0.3
    assert not elector.holds()
    await keeper


async def test_holds_turns_false_at_the_deadline_even_before_keep_notices() -> None:
    now = [0.0]
    elector = LeaseElector(FakeLeases(), FAST, clock=lambda: now[0])
    assert await elector.acquire(asyncio.Event())
    now[0] = FAST.renew_deadline_seconds - 0.01
    assert elector.holds()
    now[0] = FAST.renew_deadline_seconds
    assert not elector.holds()


async def test_a_failing_api_server_also_ends_leadership() -> None:
    api = FakeLeases()
    elector = LeaseElector(api, FAST)
    assert await elector.acquire(asyncio.Event())
    api.fail = True
    lost = asyncio.Event()
    await asyncio.wait_for(elector.keep(lost, asyncio.Event()), timeout=3.0)
    assert lost.is_set()


async def test_losing_the_lease_to_another_holder_is_noticed() -> None:
    api = FakeLeases()
    elector = LeaseElector(api, FAST)
    assert await elector.acquire(asyncio.Event())
    assert api.current is not None
    api.current = lease("thief", rv="99")
    lost = asyncio.Event()
    await asyncio.wait_for(elector.keep(lost, asyncio.Event()), timeout=3.0)
    assert lost.is_set()
    assert not elector.holds()


async def test_release_is_bounded_when_the_api_server_is_gone() -> None:
    api = FakeLeases()
    elector = LeaseElector(api, FAST)
    assert await elector.acquire(asyncio.Event())
    api.hang = True
    await asyncio.wait_for(elector.release(within=0.3), timeout=1.0)
    assert not elector.holds()


async def test_a_standby_waits_for_the_holder_to_stop_renewing() -> None:
    api = FakeLeases(lease("other", leaseDurationSeconds=1))
    standby = LeaseElector(api, FAST)
    assert not await standby.try_acquire_or_renew()
    stop = asyncio.Event()
    task = asyncio.create_task(standby.acquire(stop))
    await asyncio.sleep(0.6)
    assert not task.done()
    await asyncio.wait_for(task, timeout=2.0)
    assert task.result() is True
    assert standby.token == 1
