"""The intake hands a message over as it arrives, not once a batch has filled: the
acknowledgement (and the position it names) is composed from the queue the message
joined. JetStream's pull is replaced by a fake on a virtual clock with nats-py's
``fetch(batch, timeout)`` semantics: the pull stays open until ``batch`` messages have
come or ``timeout`` has passed."""

from __future__ import annotations

from dataclasses import dataclass, field

import nats.errors
import pytest
from nats.aio.msg import Msg

from surge_workers.intake import pull_arrivals

EXPIRES_S = 2.0
GATHER_S = 0.05


@dataclass
class LingeringPull:
    """Messages arrive at the given virtual times; ``now`` advances while a pull waits."""

    arrivals: list[float]
    now: float = 0.0
    #: (virtual time the message was handed over, the time it arrived)
    handed: list[tuple[float, float]] = field(default_factory=list)

    async def fetch(self, batch: int = 1, timeout: float | None = 5) -> list[Msg]:  # noqa: ASYNC109
        assert timeout is not None
        deadline = self.now + timeout
        arrived = [t for t in self.arrivals if t <= deadline]
        if len(arrived) >= batch:
            # The pull is answered the moment its batch is full.
            self.now = max(self.now, arrived[batch - 1])
            arrived = arrived[:batch]
        else:
            self.now = deadline
        if not arrived:
            raise nats.errors.TimeoutError
        self.arrivals = self.arrivals[len(arrived) :]
        self.handed += [(self.now, t) for t in arrived]
        return [Msg(_client=None, subject=f"m{t}") for t in arrived]  # type: ignore[arg-type]


async def test_a_lone_arrival_is_handed_over_without_waiting_for_a_batch_to_fill() -> None:
    pull = LingeringPull(arrivals=[0.0, 10.0])
    msgs = await pull_arrivals(pull, 64, wait_s=EXPIRES_S, gather_s=GATHER_S)
    assert len(msgs) == 1
    # One fetch(64) would have held it for the whole expiry (2 s) in the hope of more.
    handed_at, arrived_at = pull.handed[0]
    assert handed_at - arrived_at <= GATHER_S


async def test_messages_arriving_together_still_share_one_pull() -> None:
    pull = LingeringPull(arrivals=[0.0] * 10 + [0.01] * 5 + [5.0])
    msgs = await pull_arrivals(pull, 64, wait_s=EXPIRES_S, gather_s=GATHER_S)
    assert len(msgs) == 15
    assert max(handed - arrived for handed, arrived in pull.handed) <= GATHER_S


async def test_never_more_than_the_batch() -> None:
    pull = LingeringPull(arrivals=[0.0] * 100)
    msgs = await pull_arrivals(pull, 64, wait_s=EXPIRES_S, gather_s=GATHER_S)
    assert len(msgs) == 64


async def test_a_quiet_stream_times_out_after_the_whole_wait() -> None:
    pull = LingeringPull(arrivals=[])
    with pytest.raises(TimeoutError):
        await pull_arrivals(pull, 64, wait_s=EXPIRES_S, gather_s=GATHER_S)
    assert pull.now == EXPIRES_S
